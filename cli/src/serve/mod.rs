//! `trajstore serve`: a local, read-only web viewer. The HTTP layer (tiny_http, one thread)
//! only moves bytes; every request is answered by [`api::handle`], a plain function of the
//! store, the method and the raw URL, that takes a fresh snapshot (so the viewer follows new
//! commits) and never touches a path: assets are compiled in, data comes from the store API.

pub mod api;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

/// Resolves `host:port`, refusing a non-loopback address unless `allow_remote`.
pub fn bind_address(host: &str, port: u16, allow_remote: bool) -> Result<SocketAddr> {
    let addr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (host, port)
            .to_socket_addrs()
            .with_context(|| format!("--host {host}: not an address"))?
            .next()
            .with_context(|| format!("--host {host}: resolves to no address"))?,
    };
    if !addr.ip().is_loopback() && !allow_remote {
        bail!(
            "--host {host}: {} is not a loopback address; the viewer has no authentication, \
             so anyone who can reach it can read the store. Pass --allow-remote to bind it anyway",
            addr.ip()
        );
    }
    Ok(addr)
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    pub dir: PathBuf,
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// Address to bind; anything but a loopback address needs --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Allow binding a non-loopback address (the viewer has no authentication).
    #[arg(long)]
    allow_remote: bool,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let ServeArgs {
        dir,
        port,
        host,
        allow_remote,
    } = args;
    let (dir, host) = (dir.as_path(), host.as_str());
    let addr = bind_address(host, port, allow_remote)?;
    let store = trajstore::Store::open_read_only(dir)?;
    store.snapshot()?; // a store that cannot be read fails here, not on the first request
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = server.server_addr().to_ip().context("listening address")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "serving {} read-only at http://{bound}/",
            dir.display()
        )?;
        stdout.flush()?;
    }
    for request in server.incoming_requests() {
        let reply = api::handle(&store, request.method().as_str(), request.url());
        let mut response = tiny_http::Response::from_data(reply.body)
            .with_status_code(reply.status)
            .with_header(header("Content-Type", reply.content_type))
            .with_header(header("Cache-Control", "no-store"))
            .with_header(header("X-Content-Type-Options", "nosniff"))
            .with_header(header(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'",
            ));
        if reply.status == 405 {
            response.add_header(header("Allow", "GET, HEAD"));
        }
        // A client that went away is its own business; keep serving the others.
        let _ = request.respond(response);
    }
    Ok(ExitCode::SUCCESS)
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}

#[cfg(test)]
mod tests {
    #[test]
    fn binds_loopback_only_unless_asked() {
        assert!(super::bind_address("127.0.0.1", 0, false).is_ok());
        assert!(super::bind_address("::1", 0, false).is_ok());
        assert!(super::bind_address("localhost", 0, false).is_ok());
        let e = super::bind_address("0.0.0.0", 0, false).unwrap_err();
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        assert!(super::bind_address("0.0.0.0", 0, true).is_ok());
        assert!(super::bind_address("not a host", 0, false).is_err());
    }
}
