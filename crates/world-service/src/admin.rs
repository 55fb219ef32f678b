//! `world-service names release <name>` and `world-service names reset-token <name>`: what an
//! operator does for someone who lost a name's token. Run inside the world container
//! (`kubectl exec deploy/hello -c world -- world-service names reset-token bob`), with the same
//! settings as the service, so it reaches the same store: nothing of it is public.
//!
//! With MongoDB it works beside the running service. The embedded store is one process's file:
//! stop world-service first (locally there is no one else to lock out anyway).

use hello_common::{Name, token::Token};

use crate::{
    config::Settings,
    startup::open_store,
    store::{ClaimChange, Store},
};

const USAGE: &str = "usage: world-service names release <name>     free a claimed name and delete its waiting hellos\n       world-service names reset-token <name> give a claimed name a new token (printed once)";

/// Runs the `names` subcommand and exits, if the command line asks for it.
pub async fn run_if_asked(settings: &Settings) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("names") {
        return;
    }
    let code = match run(settings, &args[1..]).await {
        Ok(message) => {
            println!("{message}");
            0
        }
        Err(message) => {
            eprintln!("error: {message}");
            1
        }
    };
    std::process::exit(code);
}

async fn run(settings: &Settings, args: &[String]) -> Result<String, String> {
    let [action, raw] = args else {
        return Err(USAGE.to_owned());
    };
    // A claim made before its name was refused by today's rules can still be released or given
    // a new token here.
    let name = Name::parse_existing_claim(raw)
        .map_err(|error| format!("{raw:?} is not a valid name: {error}"))?;
    let store = open_store(settings).await.map_err(|error| {
        format!(
            "{error:#}. With the embedded store, stop world-service first: its file belongs to \
             one process at a time"
        )
    })?;
    let result = act(store.as_ref(), action, &name).await;
    if let Err(error) = store.close().await {
        eprintln!("warning: closing the store: {error}");
    }
    result
}

async fn act(store: &dyn Store, action: &str, name: &Name) -> Result<String, String> {
    let claim = store
        .claim_covering(name)
        .await
        .map_err(|error| error.to_string())?
        .filter(|claim| claim.inbox == name.key())
        .ok_or_else(|| format!("{name} is not claimed: nothing to do"))?;
    // The operator acts with the claim's own stored token, as its owner would.
    let change = match action {
        "release" => store
            .release_name(name, &claim.token)
            .await
            .map_err(|error| error.to_string())?,
        "reset-token" => {
            let token = Token::generate();
            let change = store
                .rotate_token(name, &claim.token, token.hash())
                .await
                .map_err(|error| error.to_string())?;
            if change == ClaimChange::Done {
                return Ok(format!(
                    "{}: new token (shown once; hand it to its owner over a safe channel): {}",
                    claim.name,
                    token.reveal()
                ));
            }
            change
        }
        other => return Err(format!("unknown action {other:?}\n{USAGE}")),
    };
    match change {
        ClaimChange::Done => Ok(format!(
            "{}: released; its waiting hellos are deleted",
            claim.name
        )),
        // The claim changed between reading it and acting on it: nothing was done.
        ClaimChange::NotClaimed | ClaimChange::WrongToken => Err(format!(
            "the claim on {name} changed meanwhile; nothing was done, run the command again"
        )),
    }
}
