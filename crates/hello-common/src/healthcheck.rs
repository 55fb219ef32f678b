//! `<service> healthcheck [PATH]`: the binary probes its own running server, for container
//! HEALTHCHECKs and Kubernetes `exec` probes. world-service listens on a Unix socket only, which
//! the kubelet's HTTP probes cannot reach, and the images have no curl.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::net::UnixStream,
    path::PathBuf,
    time::Duration,
};

/// Where a service listens, for its probe.
#[derive(Debug, Clone)]
pub enum Target {
    /// A TCP address (a listener on 0.0.0.0 is reached on loopback).
    Tcp(SocketAddr),
    /// A Unix socket.
    Unix(PathBuf),
}

/// GETs `path` (default `/healthz`) from the service at `target`; true when the answer is 200.
pub fn probe(target: &Target, path: &str) -> bool {
    let timeout = Some(Duration::from_secs(2));
    match target {
        Target::Tcp(address) => {
            let address = if address.ip().is_unspecified() {
                SocketAddr::from(([127, 0, 0, 1], address.port()))
            } else {
                *address
            };
            TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok_and(|stream| {
                let _ = stream.set_read_timeout(timeout);
                let _ = stream.set_write_timeout(timeout);
                exchange(stream, path, &address.to_string())
            })
        }
        Target::Unix(socket) => UnixStream::connect(socket).is_ok_and(|stream| {
            let _ = stream.set_read_timeout(timeout);
            let _ = stream.set_write_timeout(timeout);
            exchange(stream, path, "localhost")
        }),
    }
}

/// Sends one HTTP/1.0 GET of `path` and reads whether the status is 200.
fn exchange(mut stream: impl Read + Write, path: &str, host: &str) -> bool {
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
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

/// Runs `healthcheck [PATH]` when it is the first argument: probes `target` and exits 0 (the
/// answer was 200) or 1. Returns normally when the first argument is something else.
pub fn run_if_asked(target: Target) {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("healthcheck") {
        let path = args.next().unwrap_or_else(|| "/healthz".to_owned());
        std::process::exit(if probe(&target, &path) { 0 } else { 1 });
    }
}
