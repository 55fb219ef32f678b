//! `POST /v1/hellos`: storing hellos.

use actix_web::{HttpResponse, web};
use hello_common::{
    IdempotencyKey, Name, Problem,
    token::TokenHash,
    wire::{Batch, BatchedSend, Outcomes, SendOutcome, StoredHello},
};

use crate::{
    batched::answer_together,
    ownership::{check_sender, token_hash},
    startup::AppState,
    store::{NewHello, claims::ClaimsWanted},
};

/// `POST /v1/hellos`: sends, each judged and answered on its own: 200 with one outcome per send,
/// in their order, once every stored one is durable. Sending as a claimed name (or a look-alike)
/// needs its token; with one, `from` may be left out. The batch's claims are looked up together
/// and its hellos handed to the store together.
pub async fn send_batch(
    state: web::Data<AppState>,
    body: web::Json<Batch<BatchedSend>>,
) -> Result<HttpResponse, Problem> {
    let outcomes = answer_together(body.into_inner().calls, 201, |sends| store(&state, sends))
        .await?
        .into_iter()
        .map(SendOutcome::from)
        .collect();
    Ok(HttpResponse::Ok().json(Outcomes { outcomes }))
}

/// One send, its input parsed.
struct Send {
    to: Name,
    from: Option<Name>,
    presented: Option<TokenHash>,
    idempotency_key: Option<IdempotencyKey>,
}

fn parse(send: BatchedSend) -> Result<Send, Problem> {
    let presented = send.token_sha256.as_deref().map(token_hash).transpose()?;
    let to = Name::parse(&send.to).map_err(|error| Problem::invalid_name("to", &error))?;
    let from = send
        .from
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|error| Problem::invalid_name("from", &error))?;
    let idempotency_key = send
        .idempotency_key
        .as_deref()
        .map(IdempotencyKey::parse)
        .transpose()
        .map_err(Problem::invalid_idempotency_key)?;
    Ok(Send {
        to,
        from,
        presented,
        idempotency_key,
    })
}

/// The batch's sends: parsed, their senders checked against the claims looked up once for the
/// batch, then stored durably together.
async fn store(state: &AppState, sends: Vec<BatchedSend>) -> Vec<Result<StoredHello, Problem>> {
    let _timers: Vec<_> = sends.iter().map(|_| state.time_store("send")).collect();
    let parsed: Vec<Result<Send, Problem>> = sends.into_iter().map(parse).collect();
    let mut wanted = ClaimsWanted::default();
    for send in parsed.iter().flatten() {
        wanted.cover(&send.to);
        match (send.presented, &send.from) {
            (Some(token), _) => wanted.token(token),
            (None, Some(from)) => wanted.cover(from),
            (None, None) => {}
        }
    }
    let claims = match state.store.claims(&wanted).await {
        Ok(claims) => claims,
        Err(error) => {
            let problem = Problem::from(error);
            return parsed
                .into_iter()
                .map(|send| send.and(Err(problem.clone())))
                .collect();
        }
    };
    let mut outcomes: Vec<Option<Result<StoredHello, Problem>>> = Vec::new();
    let (mut hellos, mut places) = (Vec::new(), Vec::new());
    for (index, send) in parsed.into_iter().enumerate() {
        let hello = send.and_then(|send| {
            let (from, verified) = check_sender(&claims, send.from, send.presented)?;
            Ok(NewHello {
                to: send.to,
                from,
                idempotency_key: send.idempotency_key,
                verified,
            })
        });
        match hello {
            Ok(hello) => {
                places.push(index);
                hellos.push(hello);
                outcomes.push(None);
            }
            Err(problem) => outcomes.push(Some(Err(problem))),
        }
    }
    let inboxes: Vec<String> = hellos
        .iter()
        .map(|hello| hello.to.key().to_owned())
        .collect();
    let stored = state.store.send_batch(hellos, &claims).await;
    for ((index, inbox), outcome) in places.into_iter().zip(inboxes).zip(stored) {
        if outcome.is_ok() {
            // Durable: its readers waiting on this pod may take it now.
            state.watches.wake_inbox(&inbox);
        }
        outcomes[index] = Some(outcome.map_err(Problem::from));
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| Err(Problem::from(crate::batched::missing()))))
        .collect()
}
