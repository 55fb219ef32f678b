//! Every case is a 4xx `application/problem+json` with a detail a person can act on, and
//! nothing is stored.

use reqwest::{Method, header::HeaderValue};

use crate::support::{content_type, expect_problem, spawn_app};

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Option<(&'static str, Vec<u8>)>,
    status: u16,
}

fn post(what: &'static str, path: &str, body: &str, status: u16) -> Case {
    Case {
        what,
        method: Method::POST,
        path: path.to_owned(),
        headers: Vec::new(),
        body: Some(("application/json", body.as_bytes().to_vec())),
        status,
    }
}

fn get(what: &'static str, path: &str, status: u16) -> Case {
    Case {
        what,
        method: Method::GET,
        path: path.to_owned(),
        headers: Vec::new(),
        body: None,
        status,
    }
}

fn with_header(mut case: Case, name: &'static str, value: HeaderValue) -> Case {
    case.headers.push((name, value));
    case
}

fn with_body(mut case: Case, content_type: &'static str, body: Vec<u8>) -> Case {
    case.body = Some((content_type, body));
    case
}

fn cases() -> Vec<Case> {
    let alice = r#"{"from":"alice"}"#;
    let nested = format!(
        r#"{{"from":{}"alice"{}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    let no_body = Case {
        body: None,
        ..post("no sender at all", "/hello/bob", "", 400)
    };
    vec![
        // Recipient names in the path.
        post("MongoDB operator as recipient", "/hello/%24gt", alice, 400),
        post(
            "operator object as recipient",
            "/hello/%7B%22%24ne%22%3Anull%7D",
            alice,
            400,
        ),
        post(
            "path traversal",
            "/hello/..%2f..%2fetc%2fpasswd",
            alice,
            400,
        ),
        post(
            "encoded slash inside a name",
            "/hello/bob%2Fcarol",
            alice,
            400,
        ),
        post("NUL in the name", "/hello/bo%00b", alice, 400),
        post("control character", "/hello/bo%07b", alice, 400),
        post(
            "right-to-left override",
            "/hello/bob%E2%80%AEexe",
            alice,
            400,
        ),
        post("zero-width space", "/hello/bo%E2%80%8Bb", alice, 400),
        post(
            "markup",
            "/hello/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            alice,
            400,
        ),
        post("space", "/hello/bob%20smith", alice, 400),
        post(
            "65 characters",
            &format!("/hello/{}", "b".repeat(65)),
            alice,
            400,
        ),
        post("starts with a dot", "/hello/.bob", alice, 400),
        post("invalid UTF-8", "/hello/%FF%FE", alice, 400),
        post("empty name", "/hello/", alice, 404),
        get("starts with a dash", "/hello/-bob", 400),
        get("emoji", "/hello/%F0%9F%98%80", 400),
        // Query values.
        get("limit zero", "/hello/bob?limit=0", 400),
        get("limit over 1000", "/hello/bob?limit=1001", 400),
        get("limit not a number", "/hello/bob?limit=lots", 400),
        get("negative limit", "/hello/bob?limit=-1", 400),
        get("fractional limit", "/hello/bob?limit=1.5", 400),
        get("limit as an operator", "/hello/bob?limit[$gt]=0", 400),
        // Bodies.
        post(
            "operator object as sender",
            "/hello/bob",
            r#"{"from":{"$ne":null}}"#,
            400,
        ),
        post(
            "operator string as sender",
            "/hello/bob",
            r#"{"from":"$gt"}"#,
            400,
        ),
        post("number as sender", "/hello/bob", r#"{"from":42}"#, 400),
        post("null sender", "/hello/bob", r#"{"from":null}"#, 400),
        post("array sender", "/hello/bob", r#"{"from":["alice"]}"#, 400),
        post("empty sender", "/hello/bob", r#"{"from":""}"#, 400),
        post(
            "NUL in sender",
            "/hello/bob",
            r#"{"from":"ali\u0000ce"}"#,
            400,
        ),
        post("empty object", "/hello/bob", "{}", 400),
        post(
            "unknown field",
            "/hello/bob",
            r#"{"from":"alice","$where":"1"}"#,
            400,
        ),
        post(
            "duplicate field",
            "/hello/bob",
            r#"{"from":"alice","from":"mallory"}"#,
            400,
        ),
        post("truncated JSON", "/hello/bob", r#"{"from":"al"#, 400),
        post(
            "JSON string instead of object",
            "/hello/bob",
            r#""alice""#,
            400,
        ),
        post("deeply nested JSON", "/hello/bob", &nested, 400),
        with_body(
            post("invalid UTF-8 body", "/hello/bob", "", 400),
            "application/json",
            b"{\"from\":\"\xff\"}".to_vec(),
        ),
        with_body(
            post("10 KB body", "/hello/bob", "", 413),
            "application/json",
            format!(r#"{{"from":"{}"}}"#, "a".repeat(10_000)).into_bytes(),
        ),
        with_body(
            post("text/plain body", "/hello/bob", "", 415),
            "text/plain",
            alice.as_bytes().to_vec(),
        ),
        with_body(
            post("form body", "/hello/bob", "", 415),
            "application/x-www-form-urlencoded",
            b"from=alice".to_vec(),
        ),
        post(
            "body and query disagree",
            "/hello/bob?from=mallory",
            alice,
            400,
        ),
        no_body,
        // Headers.
        with_header(
            post("empty Idempotency-Key", "/hello/bob", alice, 400),
            "idempotency-key",
            HeaderValue::from_static(""),
        ),
        with_header(
            post("long Idempotency-Key", "/hello/bob", alice, 400),
            "idempotency-key",
            HeaderValue::from_str(&"k".repeat(129)).unwrap(),
        ),
        with_header(
            post("Idempotency-Key with a space", "/hello/bob", alice, 400),
            "idempotency-key",
            HeaderValue::from_static("a b"),
        ),
        with_header(
            post("non-ASCII Idempotency-Key", "/hello/bob", alice, 400),
            "idempotency-key",
            HeaderValue::from_bytes(b"cl\xc3\xa9").unwrap(),
        ),
    ]
}

#[tokio::test]
async fn every_bad_request_is_a_4xx_problem_and_stores_nothing() {
    let app = spawn_app().await;
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for case in &cases {
        let mut request = app
            .client
            .request(case.method.clone(), format!("{}{}", app.url, case.path));
        for (name, value) in &case.headers {
            request = request.header(*name, value.clone());
        }
        if let Some((content_type, body)) = &case.body {
            request = request
                .header("content-type", *content_type)
                .body(body.clone());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let content_type = content_type(&response);
        let body = response.text().await.unwrap_or_default();
        println!("bad input: {:<32} -> {status} {body}", case.what);
        if status != case.status
            || content_type != "application/problem+json"
            || !body.contains("\"detail\"")
        {
            failures.push(format!(
                "{}: expected {} problem, got {status} {content_type} {body}",
                case.what, case.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Nothing was stored for anyone.
    for name in ["bob", "alice", "mallory", "etc"] {
        assert_eq!(
            app.inbox(name).await["hellos"],
            serde_json::json!([]),
            "{name}'s inbox"
        );
    }
    println!(
        "bad input: {} cases, all 4xx problem+json, nothing stored",
        cases.len()
    );
}

#[tokio::test]
async fn problems_name_the_field_at_fault() {
    let app = spawn_app().await;
    let problem = expect_problem(app.say("$bad", "bob").await, 400).await;
    assert_eq!(problem["field"], "from");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("must start with a letter or a digit")
    );
    let problem = expect_problem(app.say("alice", "bad%24name").await, 400).await;
    assert_eq!(problem["field"], "to");
    let problem = expect_problem(app.read("bob?limit=0").await, 400).await;
    assert_eq!(problem["field"], "limit");
}
