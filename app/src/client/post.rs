//! Sending a message: `POST /message` with a JSON body `{"message": "…"}`. The author comes from
//! the session cookie, which the browser sends by itself (same origin), so the body carries the
//! text alone. A refusal comes back as a sentence for people, with the server's reason.

use super::with_reason;
use crate::protocol::{ChatMessage, MessageText, PostMessage};
use gloo_net::http::Request;

/// Posts `text`. `Ok` carries the message as stored (with its `seq`) when the answer could be
/// read; `Err` is a sentence saying why it was not sent.
pub async fn send_message(text: &MessageText) -> Result<Option<ChatMessage>, String> {
    let body = PostMessage { message: text.as_str().to_owned(), id: None, name: None };
    let request = Request::post("/message")
        .json(&body)
        .map_err(|_| "This message could not be prepared for sending.".to_owned())?;
    let response = request.send().await.map_err(|_| {
        "The message was not sent: the server cannot be reached. Check your connection and \
         try again."
            .to_owned()
    })?;
    let status = response.status();
    if response.ok() {
        // The message is stored either way; if this answer cannot be read, its broadcast will
        // still show it.
        return Ok(response.json::<ChatMessage>().await.ok());
    }
    let reason = response.text().await.unwrap_or_default();
    Err(with_reason(&refusal(status), &reason))
}

/// What a refused `POST /message` means for the person who pressed Send.
fn refusal(status: u16) -> String {
    match status {
        400 => "This message cannot be sent.".to_owned(),
        403 => "You are not joined in this browser session; reload the page to join again.".to_owned(),
        409 => "This name is already in use in another browser.".to_owned(),
        413 => "This message is too large to send.".to_owned(),
        415 => "The server does not accept messages in this form.".to_owned(),
        429 => "You are sending messages too fast; wait a moment.".to_owned(),
        503 => "The chat is busy right now; try again in a moment.".to_owned(),
        other => format!("The message was not sent (the server answered {other})."),
    }
}
