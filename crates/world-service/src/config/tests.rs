use super::{Settings, uri_credentials_problem};

#[test]
fn uris_without_credentials_or_with_well_formed_ones_pass() {
    for uri in [
        "mongodb://127.0.0.1:27017/?directConnection=true",
        "mongodb://mongodb-0.mongodb:27017/hello",
        "mongodb://world-service:s3cr3t-_Value@mongodb-0.mongodb:27017/hello?authSource=hello", // credential-scan: allow (made up)
        "mongodb://user:p%40ss@a,b,c/?replicaSet=rs0", // credential-scan: allow (made up)
        "mongodb://x509-user@host/?authMechanism=MONGODB-X509",
    ] {
        assert_eq!(uri_credentials_problem(uri), None, "{uri}");
    }
}

#[test]
fn unexpanded_empty_or_unencoded_credentials_are_refused_without_echoing_them() {
    for (uri, expected) in [
        (
            "mongodb://$(MONGODB_USERNAME):$(MONGODB_PASSWORD)@h/",
            "unexpanded",
        ),
        (
            "mongodb://world-service:@mongodb-0.mongodb:27017/hello",
            "empty password",
        ),
        ("mongodb://:secret@h/", "empty user name"),
        ("mongodb://user:pa/ss@h/", "percent-encoded"),
        ("mongodb://user:a:b@h/", "percent-encoded"), // credential-scan: allow (made up)
    ] {
        let problem = uri_credentials_problem(uri).unwrap_or_else(|| panic!("{uri} passed"));
        assert!(problem.contains(expected), "{uri}: {problem}");
    }
    let mut settings = Settings::for_tests("data".into());
    settings.mongodb_uri = Some("mongodb://world-service:@h/".to_owned());
    let error = settings.validate().unwrap_err().to_string();
    assert!(
        error.starts_with("WORLD_MONGODB_URI has an empty password"),
        "{error}"
    );
    assert!(
        !error.contains("mongodb://"),
        "the URI must not be echoed: {error}"
    );
}

#[test]
fn the_lease_is_still_read_under_its_old_name_with_a_warning() {
    let mut settings = Settings::for_tests("data".into());
    settings.claim_lease_ms = Some(1234);
    let warnings = settings.adopt_old_names(false);
    assert_eq!(settings.lease_ms, 1234);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("rename it to WORLD_LEASE_MS"),
        "{warnings:?}"
    );
}

#[test]
fn the_new_lease_name_wins_over_the_old_one() {
    let mut settings = Settings::for_tests("data".into());
    settings.lease_ms = 5000;
    settings.claim_lease_ms = Some(1234);
    let warnings = settings.adopt_old_names(true);
    assert_eq!(settings.lease_ms, 5000);
    assert!(warnings[0].contains("is ignored"), "{warnings:?}");
}

#[test]
fn a_socket_path_longer_than_a_unix_socket_can_hold_is_refused() {
    let mut settings = Settings::for_tests("data".into());
    settings.listen_socket = Some(format!("/run/{}/world.sock", "w".repeat(100)).into());
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.starts_with("WORLD_LISTEN_SOCKET "), "{error}");
    settings.listen_socket = Some("/run/world/world.sock".into());
    settings.validate().unwrap();
}

#[test]
fn a_bad_old_lease_name_is_named_in_the_error() {
    let mut settings = Settings::for_tests("data".into());
    settings.claim_lease_ms = Some(5);
    settings.adopt_old_names(false);
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.starts_with("WORLD_CLAIM_LEASE_MS "), "{error}");
}
