//! A bare HTTP/1.1 connection for scenarios that need one TCP connection
//! per simulated subscriber and to know when each request left: a GET
//! written by hand, and its answer read by `Content-Length`. Nothing else
//! of HTTP (no chunked bodies, no redirects); what a Hush server answers to
//! a JSON GET is enough.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The largest answer accepted (a page of channel posts is far smaller).
const MAX_BODY: usize = 32 << 20;
/// The longest header line accepted.
const MAX_LINE: usize = 16 << 10;
/// Read buffer per connection (thousands are open at once).
const READ_BUFFER: usize = 4096;

/// One kept-alive connection to a server.
#[derive(Debug)]
pub struct Conn {
    io: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    /// Connects to `addr` from source address number `n` (see
    /// [`crate::net::connect_from`]).
    pub async fn open(n: usize, addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = crate::net::connect_from(n, addr).await?;
        Ok(Self {
            io: BufReader::with_capacity(READ_BUFFER, stream),
            host: addr.to_string(),
        })
    }

    /// Writes `GET path` with a bearer token; returns once it is written.
    pub async fn send_get(&mut self, path: &str, token: &str) -> anyhow::Result<()> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
            self.host
        );
        self.io
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .context("writing a request")
    }

    /// Reads one answer: its status and body.
    pub async fn response(&mut self) -> anyhow::Result<(u16, Vec<u8>)> {
        let status_line = self.line().await?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP status line: {status_line:?}"))?;
        let mut length = None;
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                bail!("not an HTTP header: {line:?}");
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().context("Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("a chunked answer: this client reads Content-Length only");
            }
        }
        let length = length.context("an answer without Content-Length")?;
        if length > MAX_BODY {
            bail!("an answer of {length} bytes");
        }
        let mut body = vec![0u8; length];
        self.io
            .read_exact(&mut body)
            .await
            .context("reading an answer's body")?;
        Ok((status, body))
    }

    /// One header line without its CRLF; fails on a closed connection.
    async fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        let n = (&mut self.io)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await
            .context("reading an answer")?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        if !line.ends_with('\n') {
            bail!("a header line longer than {MAX_LINE} bytes");
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn reads_answers_one_after_another_on_one_connection() -> anyhow::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await?;
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            while String::from_utf8_lossy(&seen).matches("\r\n\r\n").count() < 2 {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(buf.get(..n).unwrap_or_default());
            }
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx: y\r\n\r\nhiHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await?;
            anyhow::Ok(String::from_utf8_lossy(&seen).into_owned())
        });
        let mut c = Conn::open(0, addr).await?;
        c.send_get("/a", "t1").await?;
        c.send_get("/b", "t2").await?;
        assert_eq!(c.response().await?, (200, b"hi".to_vec()));
        assert_eq!(c.response().await?, (404, Vec::new()));
        let seen = server.await??;
        assert!(seen.starts_with("GET /a HTTP/1.1\r\n"), "{seen}");
        assert!(seen.contains("Authorization: Bearer t2\r\n"), "{seen}");
        // The server closed: the next read says so.
        assert!(c.response().await.is_err());
        Ok(())
    }
}
