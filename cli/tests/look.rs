//! Looking at the data: `trajstore preview` files and `trajstore serve` over a real socket.

use crate::util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use crate::util::{cli, cli_ok};
use serde_json::Value;
use trajstore::{Query, Store};

fn synth(store: &str, user: &str, episodes: &str, frame: &str, codec: &str) {
    let flags = [
        "--frame",
        frame,
        "--codec",
        codec,
        "--min-steps",
        "6",
        "--max-steps",
        "12",
    ];
    util::synth(store, user, episodes, &flags);
}

fn decode_png(bytes: &[u8]) -> (u32, u32, png::ColorType, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type, buf)
}

#[test]
fn preview_writes_sheets_and_gifs_for_raw_and_lz4_and_refuses_non_images() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    let s = s.to_str().unwrap();
    synth(s, "ann", "1", "16x16x3", "raw");
    synth(s, "bob", "1", "12x10x1", "lz4");
    let snap = Store::open_read_only(s).unwrap().snapshot().unwrap();
    let eps = snap.episodes(&Query::default()).unwrap();
    for e in &eps {
        let id = e.id().to_string();
        let png_path = dir.path().join(format!("{id}.png"));
        let text = cli_ok(&[
            "preview",
            s,
            &id,
            "--out",
            png_path.to_str().unwrap(),
            "--every",
            "2",
        ]);
        assert!(text.contains("contact sheet"), "{text}");
        let (w, h, colour, pixels) = decode_png(&std::fs::read(&png_path).unwrap());
        assert_eq!(colour, png::ColorType::Rgba);
        assert_eq!(pixels.len(), (w * h * 4) as usize);
        // The first tile (step 0) sits at (4, 4), scaled; its bottom-right pixel is the
        // stored frame's.
        let frames = snap.field(e, "obs/frame").unwrap();
        let shape = frames.spec().shape_usize();
        let (fh, fw, c) = (shape[0], shape[1], shape.get(2).copied().unwrap_or(1));
        let scale = trajstore::preview::tile_scale(fw);
        let first = frames.to_vec().unwrap();
        let i = ((fh - 1) * fw + fw - 1) * c;
        let want = if c == 1 {
            [first[i]; 3]
        } else {
            [first[i], first[i + 1], first[i + 2]]
        };
        let (x, y) = (4 + (fw - 1) * scale, 4 + (fh - 1) * scale);
        let p = (y * w as usize + x) * 4;
        assert_eq!(&pixels[p..p + 3], &want, "episode {id}");

        let gif_path = dir.path().join(format!("{id}.gif"));
        let text = cli_ok(&["preview", s, &id, "--out", gif_path.to_str().unwrap()]);
        assert!(text.contains("animated GIF"), "{text}");
        let mut decoder = gif::DecodeOptions::new()
            .read_info(std::fs::File::open(&gif_path).unwrap())
            .unwrap();
        let mut count = 0;
        while decoder.read_next_frame().unwrap().is_some() {
            count += 1;
        }
        assert_eq!(
            count,
            e.steps() as usize + 1,
            "one GIF frame per observation"
        );
    }
    let id = eps[0].id().to_string();
    for (args, needle) in [
        (
            vec!["--field", "obs/ram/health"],
            "\"obs/ram/health\": is i32[2], not an image",
        ),
        (vec!["--field", "action"], "image fields: obs/frame"),
        (vec!["--field", "nope"], "unknown field \"nope\""),
        (vec!["--out", "x.jpg"], "expected a .png"),
        (vec!["--every", "0"], "--every"),
    ] {
        let out = cli(&[&["preview", s, &id][..], &args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// `trajstore serve DIR --port 0`, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(store: &str) -> Server {
        let mut child = util::bin()
            .args(["serve", store, "--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .unwrap_or_else(|| panic!("{line:?}"))
            .trim()
            .trim_end_matches('/')
            .to_owned();
        Server { child, addr }
    }

    /// Sends a raw request line (the target exactly as given) and returns status and body.
    fn request(&self, method: &str, target: &str) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("headers");
        let head = String::from_utf8_lossy(&raw[..end]).to_string();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut body = raw[end + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        (status, body)
    }

    fn json(&self, target: &str) -> Value {
        let (status, body) = self.request("GET", target);
        assert_eq!(status, 200, "{target}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let n =
            usize::from_str_radix(std::str::from_utf8(&body[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&body[nl + 2..nl + 2 + n]);
        body = &body[nl + 2 + n + 2..];
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_over_a_socket_is_read_only_follows_commits_and_refuses_traversal() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    let s = s.to_str().unwrap();
    synth(s, "ann", "2", "8x8x3", "raw");
    synth(s, "bob", "1", "8x6x1", "lz4");
    let server = Server::start(s);
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);

    let (status, page) = server.request("GET", "/");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("/app.js"));
    let table = server.json("/api/episodes?user=bob");
    let rows = table["episodes"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["user"], "bob");
    let id = rows[0]["episode"].as_u64().unwrap();
    let ep = server.json(&format!("/api/episode/{id}"));
    assert_eq!(ep["user"], "bob");

    // Frames decode to the stored pixels (an lz4 field, decoded and re-encoded on the fly).
    let snap = Store::open_read_only(s).unwrap().snapshot().unwrap();
    let e = snap.episode(trajstore::EpisodeId(id)).unwrap();
    let stored = snap.field(&e, "obs/frame").unwrap().to_vec().unwrap();
    let (status, png) = server.request(
        "GET",
        &format!("/api/episode/{id}/frame/2.png?field=obs%2Fframe"),
    );
    assert_eq!(status, 200);
    let (w, h, colour, pixels) = decode_png(&png);
    assert_eq!((w, h, colour), (6, 8, png::ColorType::Grayscale));
    assert_eq!(pixels, stored[2 * 48..3 * 48]);

    let before: Vec<_> = std::fs::read_dir(s)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for target in [
        "/../Cargo.toml",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/api/%2e%2e/index.redb",
        "/api%2fepisodes",
        "/api/episode/1%2f..%2f..%2fetc",
        "//etc/passwd",
        "/etc/passwd",
        "/index.redb",
        "http://127.0.0.1/../../etc/passwd",
        "/api/episode/abc",
        "/api/episode/999999999999999999999999",
        "/api/episode/4242",
        "/api/episode/1/frame/99999.png",
        "/api/episode/1/frame/0.png?field=..%2F..%2Fetc%2Fpasswd",
    ] {
        let (status, body) = server.request("GET", target);
        assert!((400..500).contains(&status), "{target}: {status}");
        assert!(
            !String::from_utf8_lossy(&body).contains("root:"),
            "{target}"
        );
    }
    for method in ["POST", "PUT", "DELETE"] {
        assert_eq!(server.request(method, "/api/episode/1").0, 405, "{method}");
    }
    let after: Vec<_> = std::fs::read_dir(s)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after, "the store directory is unchanged");

    // A recorder in another process commits while the server runs: the next poll sees it.
    let status = server.json("/api/status");
    assert_eq!(status["episodes"], 3);
    synth(s, "cid", "1", "8x8x3", "raw");
    let status = server.json("/api/status");
    assert_eq!(status["episodes"], 4);
    assert_eq!(
        server.json("/api/episodes?user=cid")["episodes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn serve_refuses_a_public_address_without_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().to_str().unwrap();
    cli_ok(&["init", s]);
    let out = cli(&["serve", s, "--host", "0.0.0.0", "--port", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
}
