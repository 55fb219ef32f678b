//! `<service> healthcheck [PATH]`: the binary probes its own running server, for container
//! HEALTHCHECKs and Kubernetes `exec` probes. world-service listens on loopback, where the
//! kubelet's HTTP probes cannot reach it, and the images have no curl.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// GETs `path` (default `/healthz`) on `address`; true when the answer is 200.
pub fn probe(address: SocketAddr, path: &str) -> bool {
    let timeout = Duration::from_secs(2);
    // A listener on 0.0.0.0 is reached on loopback.
    let target = if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&target, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(count) => read += count,
        }
    }
    head[..read].starts_with(b"HTTP/1.1 200") || head[..read].starts_with(b"HTTP/1.0 200")
}

/// Runs `healthcheck [PATH]` when it is the first argument: probes `address` and exits 0 (the
/// answer was 200) or 1. Returns normally when the first argument is something else.
pub fn run_if_asked(address: SocketAddr) {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("healthcheck") {
        let path = args.next().unwrap_or_else(|| "/healthz".to_owned());
        std::process::exit(if probe(address, &path) { 0 } else { 1 });
    }
}
