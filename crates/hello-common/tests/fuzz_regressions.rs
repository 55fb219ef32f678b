//! Every input a fuzz target ever crashed on (crates/hello-common/fuzz/regressions/<target>/),
//! replayed on stable Rust with the same properties; seeds with tricky cases are kept there too.

use std::{fs, path::Path};

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut replayed = 0;
    for entry in fs::read_dir(&dir).expect("regressions directory") {
        let path = entry.expect("directory entry").path();
        let data = fs::read(&path).expect("regression input");
        check(&data);
        replayed += 1;
    }
    assert!(replayed > 0, "no inputs in {}", dir.display());
    println!("fuzz regressions: {target}: {replayed} inputs replayed");
}

#[test]
fn name_regressions_hold() {
    replay("name", hello_common::fuzzing::check_name);
}

#[test]
fn request_regressions_hold() {
    replay("request", hello_common::fuzzing::check_request);
}
