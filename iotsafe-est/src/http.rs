//! One HTTP/1.1 request and its answer over a byte stream (the TLS connection): what EST needs
//! and no more. Bodies by `Content-Length`, chunked, or up to the end of the connection; every
//! size bounded, so a misbehaving server cannot make the client hold unbounded memory.

use std::io::{self, Read, Write};

/// The most a header block or a body may hold.
const MAX_HEADERS: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request (`Connection: close`) and reads the answer.
pub fn exchange(
    stream: &mut (impl Read + Write),
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    read_response(stream)
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Reads into `buf` until `done(buf)` says how much of it is the message head.
fn read_response(stream: &mut impl Read) -> io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (status, headers, head_len) = loop {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut fields);
        match parsed
            .parse(&buf)
            .map_err(|e| invalid(format!("HTTP answer: {e}")))?
        {
            httparse::Status::Complete(len) => {
                let status = parsed
                    .code
                    .ok_or_else(|| invalid("HTTP answer without status"))?;
                let headers = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).trim().to_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (status, headers, len);
            }
            httparse::Status::Partial => {
                if buf.len() > MAX_HEADERS {
                    return Err(invalid("HTTP header block over 16 KiB"));
                }
                let n = read_some(stream, &mut chunk)?;
                if n == 0 {
                    return Err(invalid("the connection ended inside the HTTP header"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    };
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let mut rest = buf.split_off(head_len);
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        response.body = read_chunked(stream, rest)?;
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("Content-Length {length:?}")))?;
        if length > MAX_BODY {
            return Err(invalid(format!("a body of {length} bytes (over 1 MiB)")));
        }
        while rest.len() < length {
            let n = read_some(stream, &mut chunk)?;
            if n == 0 {
                return Err(invalid("the connection ended inside the HTTP body"));
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(length);
        response.body = rest;
    } else {
        loop {
            let n = read_some(stream, &mut chunk)?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
            if rest.len() > MAX_BODY {
                return Err(invalid("a body over 1 MiB"));
            }
        }
        response.body = rest;
    }
    Ok(response)
}

/// A read where a peer that closes without TLS close_notify counts as the end (many HTTP
/// servers do after `Connection: close`; the body's length is checked where it is known).
fn read_some(stream: &mut impl Read, chunk: &mut [u8]) -> io::Result<usize> {
    match stream.read(chunk) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        other => other,
    }
}

/// A chunked body (RFC 9112 §7.1), `have` being what was read past the header already.
fn read_chunked(stream: &mut impl Read, mut have: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut more = |have: &mut Vec<u8>| -> io::Result<()> {
        let n = read_some(stream, &mut chunk)?;
        if n == 0 {
            return Err(invalid("the connection ended inside a chunked body"));
        }
        if have.len() + n > MAX_BODY + MAX_HEADERS {
            return Err(invalid("a chunked body over 1 MiB"));
        }
        have.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    loop {
        let line_end = loop {
            if let Some(at) = have.windows(2).position(|w| w == b"\r\n") {
                break at;
            }
            more(&mut have)?;
        };
        let line = String::from_utf8_lossy(&have[..line_end]).into_owned();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid(format!("chunk size {line:?}")))?;
        have.drain(..line_end + 2);
        if size == 0 {
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(invalid("a chunked body over 1 MiB"));
        }
        while have.len() < size + 2 {
            more(&mut have)?;
        }
        body.extend_from_slice(&have[..size]);
        have.drain(..size + 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(bytes: &[u8]) -> io::Result<Response> {
        read_response(&mut &bytes[..])
    }

    #[test]
    fn bodies_by_length_chunks_and_end_of_connection() {
        let r = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabcdef").unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.header("x-a")),
            (200, &b"abc"[..], Some("b"))
        );
        let r = answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcde");
        let r = answer(b"HTTP/1.0 202 Accepted\r\nRetry-After: 3\r\n\r\nrest").unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.header("Retry-After")),
            (202, &b"rest"[..], Some("3"))
        );
    }

    #[test]
    fn refuses_truncated_or_oversized_answers() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Le"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"garbage\r\n\r\n",
        ] {
            assert!(answer(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
