//! `beacon healthcheck`: asks the running process's admin listener (`BEACON_ADMIN_ADDR`) whether it
//! is ready (`/readyz`), for a container's health check — a static binary has no curl beside it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Exit code 0 when `/readyz` answers 200, 1 otherwise (with the reason on stderr).
pub async fn healthcheck(admin: SocketAddr) -> ExitCode {
    let target = reachable(admin);
    match tokio::time::timeout(TIMEOUT, ready_status(target)).await {
        Ok(Ok(200)) => ExitCode::SUCCESS,
        Ok(Ok(status)) => {
            eprintln!("beacon: http://{target}/readyz answered {status}");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("beacon: http://{target}/readyz: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("beacon: http://{target}/readyz did not answer within {TIMEOUT:?}");
            ExitCode::FAILURE
        }
    }
}

/// A listener on every address (`0.0.0.0:9090`) is reached on loopback.
fn reachable(admin: SocketAddr) -> SocketAddr {
    match admin.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, admin.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => {
            (std::net::Ipv6Addr::LOCALHOST, admin.port()).into()
        }
        _ => admin,
    }
}

/// The status code of `GET /readyz`.
async fn ready_status(target: SocketAddr) -> std::io::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(target).await?;
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    stream.take(4096).read_to_end(&mut head).await?;
    status_of(&head)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}

/// `HTTP/1.1 200 OK…` → 200.
fn status_of(response: &[u8]) -> Option<u16> {
    let line = response.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_and_reaches_any_address_on_loopback() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n\r\nready"), Some(200));
        assert_eq!(
            status_of(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(
            reachable("0.0.0.0:9090".parse().expect("addr")),
            "127.0.0.1:9090".parse().expect("addr")
        );
        assert_eq!(
            reachable("10.0.0.5:9090".parse().expect("addr")),
            "10.0.0.5:9090".parse().expect("addr")
        );
    }
}
