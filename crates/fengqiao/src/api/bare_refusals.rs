//! hyper's own refusals, given the JSON body every other refusal has.
//!
//! A request hyper cannot parse never reaches the router: a path and query past 64 KiB (414),
//! a header section past its buffer (431), a malformed request line or header (400). hyper
//! answers those itself, with `content-length: 0` and no body, and closes the connection. The
//! listener here wraps each connection's stream and replaces such an answer, as hyper writes it,
//! with the same status and an [`ApiError`] body, as the OpenAPI document says every error has.
//! The router's own answers are never touched: each of its errors has a JSON body, so its head
//! never says `content-length: 0`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use fengqiao_case::ApiError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

use super::MAX_URI_BYTES;
use super::tls::{PeerAddress, TlsListener};

/// A listener whose connections give hyper's bodiless refusals a JSON body.
#[derive(Debug)]
pub struct JsonRefusalListener<L>(pub L);

impl<L: Listener> Listener for JsonRefusalListener<L> {
    type Io = JsonRefusals<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, address) = self.0.accept().await;
        (
            JsonRefusals {
                inner: io,
                replacing: None,
            },
            address,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, JsonRefusalListener<TcpListener>>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, JsonRefusalListener<TcpListener>>) -> Self {
        PeerAddress(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, JsonRefusalListener<TlsListener>>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, JsonRefusalListener<TlsListener>>) -> Self {
        PeerAddress(*stream.remote_addr())
    }
}

/// One connection's stream; see the module.
#[derive(Debug)]
pub struct JsonRefusals<S> {
    inner: S,
    /// A replacement being written: its bytes, how many are written, and the length of what
    /// hyper asked to write (reported as written once the replacement is).
    replacing: Option<(Vec<u8>, usize, usize)>,
}

/// The answer to write instead of `head`, if `head` is one of hyper's bodiless refusals.
fn replacement_for(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    if !text.ends_with("\r\n\r\n")
        || !text
            .to_ascii_lowercase()
            .contains("\r\ncontent-length: 0\r\n")
    {
        return None;
    }
    let status_line = text.lines().next()?;
    let message = match rest.get(..3)? {
        "414" => {
            format!("the request's path and query are too long; at most {MAX_URI_BYTES} bytes")
        }
        "431" => "the request's header fields are too large".to_owned(),
        "400" => "malformed HTTP request: its request line or a header cannot be read".to_owned(),
        _ => return None,
    };
    let body = serde_json::to_vec(&ApiError { error: message }).ok()?;
    let mut answer = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: \
         close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend(body);
    Some(answer)
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonRefusals<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(context, buffer)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonRefusals<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none()
            && buffer.starts_with(b"HTTP/1.1 4")
            && let Some(answer) = replacement_for(buffer)
        {
            this.replacing = Some((answer, 0, buffer.len()));
        }
        let Some((answer, written, asked)) = &mut this.replacing else {
            return Pin::new(&mut this.inner).poll_write(context, buffer);
        };
        while *written < answer.len() {
            let count = ready!(Pin::new(&mut this.inner).poll_write(context, &answer[*written..]))?;
            if count == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += count;
        }
        let asked = *asked;
        this.replacing = None;
        Poll::Ready(Ok(asked))
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(context)
    }

    // Not vectored: hyper then writes an answer's head in one buffer, which is what is matched.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodiless_refusals_are_replaced() {
        let bare = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 08:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(replacement_for(bare).unwrap()).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{answer}"
        );
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(body["error"].as_str().unwrap().contains("too long"));

        let own = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 42\r\n\r\n";
        assert_eq!(replacement_for(own), None);
        let with_body = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n{}";
        assert_eq!(replacement_for(with_body), None);
        let success = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(replacement_for(success), None);
    }
}
