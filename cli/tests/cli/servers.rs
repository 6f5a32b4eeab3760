//! Real servers on the loopback interface for the notification tests: an HTTP/1.1 sink
//! that records each request and answers from a script of status codes, and an SMTP sink
//! that speaks enough of the protocol for a real client (EHLO, AUTH PLAIN and LOGIN, MAIL,
//! RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) and records what it is given.
//!
//! Each listens on a free port of 127.0.0.1 and serves one connection at a time on a
//! thread of its own until the test process ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One HTTP request as received.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Names lower-cased, in order.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Request {
    /// The `X-Masclet-Signature` a sender holding `secret` gives this request: `sha256=`
    /// and the HMAC-SHA256 of `<X-Masclet-Timestamp>.<body>`; `None` without a timestamp.
    pub(crate) fn expected_signature(&self, secret: &str) -> Option<String> {
        let mut signed = format!("{}.", self.header("x-masclet-timestamp")?).into_bytes();
        signed.extend_from_slice(&self.body);
        Some(format!(
            "sha256={}",
            hmac_sha256(secret.as_bytes(), &signed)
        ))
    }
}

/// HMAC-SHA256 written out from its definition (RFC 2104), independent of masclet's.
fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// An HTTP/1.1 server answering each request with the next status of its script.
pub(crate) struct HttpSink {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl HttpSink {
    /// Answer the n-th request with `responses[n]`, and every request past the script with
    /// its last status (200 when it is empty): `vec![500]` always fails.
    pub(crate) fn start(responses: Vec<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(req) = read_request(&stream) else {
                    continue;
                };
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(req);
                    seen.len() - 1
                };
                let code = responses
                    .get(n)
                    .or(responses.last())
                    .copied()
                    .unwrap_or(200);
                let reason = match code {
                    200 => "OK",
                    429 => "Too Many Requests",
                    500 => "Internal Server Error",
                    503 => "Service Unavailable",
                    _ => "Status",
                };
                let mut s = &stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Self { port, requests }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests received so far.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// Request line, headers, then exactly Content-Length bytes of body.
fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// One mail as the SMTP sink received it.
#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub(crate) from: String,
    pub(crate) to: Vec<String>,
    /// The message, headers and body, dot-unstuffed, lines ending in CRLF.
    pub(crate) data: String,
    /// The user and password of the session's AUTH, if any.
    pub(crate) auth: Option<(String, String)>,
}

impl Mail {
    /// The header `name` (any case), unfolded, its RFC 2047 `=?utf-8?b?...?=` words
    /// decoded, as a mail reader shows it.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?.replace("\r\n ", " ");
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let value = head
            .split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))?[prefix.len()..]
            .trim()
            .to_string();
        // Blanks between two encoded words are not part of the text (RFC 2047, 6.2).
        let (mut out, mut after_encoded) = (Vec::new(), false);
        for word in value.split_whitespace() {
            let lower = word.to_ascii_lowercase();
            let encoded = lower.starts_with("=?utf-8?b?") && lower.ends_with("?=");
            let joined = encoded && after_encoded;
            if !out.is_empty() && !joined {
                out.push(b' ');
            }
            if encoded {
                out.extend(base64_decode(&word[10..word.len() - 2]));
            } else {
                out.extend_from_slice(word.as_bytes());
            }
            after_encoded = encoded;
        }
        Some(String::from_utf8(out).unwrap())
    }
}

/// A plain SMTP server (no STARTTLS) recording each mail and each command's verb.
pub(crate) struct SmtpSink {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    verbs: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let verbs = Arc::new(Mutex::new(Vec::new()));
        let (m, v) = (Arc::clone(&mails), Arc::clone(&verbs));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = smtp_session(&stream, &m, &v);
            }
        });
        Self { port, mails, verbs }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The mails accepted so far.
    pub(crate) fn messages(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    /// Every command's verb received so far, upper-cased (`EHLO`, `AUTH`, `MAIL`...).
    pub(crate) fn verbs(&self) -> Vec<String> {
        self.verbs.lock().unwrap().clone()
    }
}

fn smtp_session(
    stream: &TcpStream,
    mails: &Mutex<Vec<Mail>>,
    verbs: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(stream);
    let mut w = stream;
    let mut say = |text: &str| w.write_all(format!("{text}\r\n").as_bytes());
    say("220 sink.test ESMTP ready")?;
    let (mut auth, mut from, mut to) = (None, String::new(), Vec::new());
    loop {
        let line = read_line(&mut r)?;
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        verbs.lock().unwrap().push(verb.clone());
        let arg = line.get(verb.len()..).unwrap_or("").trim();
        match verb.as_str() {
            "EHLO" => {
                say("250-sink.test\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SIZE 1000000")?
            }
            "HELO" => say("250 sink.test")?,
            "AUTH" => {
                let mut words = arg.split_whitespace();
                let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next().map(str::to_string);
                let pair = if mechanism == "PLAIN" {
                    let b64 = match initial {
                        Some(s) => s,
                        None => {
                            say("334 ")?;
                            read_line(&mut r)?
                        }
                    };
                    let raw = base64_decode(&b64);
                    let mut f = raw.split(|&b| b == 0).skip(1);
                    let user = String::from_utf8_lossy(f.next().unwrap_or(b"")).into_owned();
                    let pass = String::from_utf8_lossy(f.next().unwrap_or(b"")).into_owned();
                    (user, pass)
                } else if mechanism == "LOGIN" {
                    say("334 VXNlcm5hbWU6")?;
                    let user = base64_decode(&read_line(&mut r)?);
                    say("334 UGFzc3dvcmQ6")?;
                    let pass = base64_decode(&read_line(&mut r)?);
                    (
                        String::from_utf8_lossy(&user).into_owned(),
                        String::from_utf8_lossy(&pass).into_owned(),
                    )
                } else {
                    say("504 5.5.4 unrecognized authentication type")?;
                    continue;
                };
                auth = Some(pair);
                say("235 2.7.0 authentication successful")?;
            }
            "MAIL" => {
                from = angle(arg);
                to.clear();
                say("250 2.1.0 ok")?;
            }
            "RCPT" => {
                to.push(angle(arg));
                say("250 2.1.5 ok")?;
            }
            "DATA" => {
                say("354 end data with <CR><LF>.<CR><LF>")?;
                let mut data = String::new();
                loop {
                    let l = read_line(&mut r)?;
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push_str("\r\n");
                }
                mails.lock().unwrap().push(Mail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                    auth: auth.clone(),
                });
                say("250 2.0.0 queued")?;
            }
            "RSET" => {
                (from, to) = (String::new(), Vec::new());
                say("250 2.0.0 ok")?;
            }
            "NOOP" => say("250 2.0.0 ok")?,
            "QUIT" => return say("221 2.0.0 bye"),
            "STARTTLS" => say("454 4.7.0 TLS not available")?,
            _ => say("502 5.5.2 command not recognized")?,
        }
    }
}

/// One line without its CRLF; an error at the end of the stream.
fn read_line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The address between `<` and `>` of `FROM:<a@b> SIZE=1`.
fn angle(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg[start..].find('>').map_or(arg.len(), |i| start + i);
    arg[start..end].to_string()
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()) {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            continue;
        };
        acc = ((acc << 6) | v as u32) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
