//! A request body that gives up when the client stops sending it.
//!
//! hyper times out request *headers* (with a timer) but waits for a body as long as the
//! client likes, so a client that announces a body and then sends nothing holds a socket and
//! a task forever. This wrapper fails the body once no bytes have arrived for `idle`; a slow
//! but moving upload is unaffected, since every frame pushes the deadline back.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct IdleTimeoutBody {
    inner: Incoming,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimeoutBody {
    pub fn new(inner: Incoming, idle: Duration) -> IdleTimeoutBody {
        IdleTimeoutBody { inner, idle, deadline: Box::pin(tokio::time::sleep(idle)) }
    }
}

impl Body for IdleTimeoutBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline.as_mut().reset(Instant::now() + this.idle);
                Poll::Ready(frame.map(|result| result.map_err(BoxError::from)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err("the request body stopped arriving".into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
