//! The proxy's own answers when there is no upstream answer to relay.

use super::exchange::Failure;
use crate::serve::message::{page, Reply};
use actix_web::http::StatusCode;

/// A failed exchange: 504 when it timed out (connecting or waiting for the head), 502
/// otherwise, as nginx answers.
pub(crate) fn failure_page(f: Failure) -> Reply<'static> {
    match f {
        Failure::ConnectTimeout | Failure::ReadTimeout => {
            page(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
        }
        Failure::ConnectRefused | Failure::Broken => page(StatusCode::BAD_GATEWAY, "Bad Gateway"),
    }
}

/// What is logged when the client left first (nginx's non-standard 499); nothing reaches
/// the client, whose socket is closed.
pub(crate) fn client_closed() -> Reply<'static> {
    let mut r = Reply::new(StatusCode::from_u16(499).expect("499 is a valid status code"));
    r.close = true;
    r
}
