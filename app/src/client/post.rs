//! Sending a message: `POST /message` with a JSON body `{"message": "…", "room": "…"}`. The author comes from
//! the session cookie, which the browser sends by itself (same origin), so the body carries the
//! text alone. A refusal comes back as a sentence for people, never a status code.

use super::{http, with_reason};
use crate::{
    model::SendFailure,
    protocol::{ChatMessage, MessageText, PostMessage, RoomName},
};

/// Posts `text` in `room`. `Ok` carries the message as stored (with its `seq`) when the answer could be
/// read; `Err` says why it was not sent.
pub async fn send_message(room: &RoomName, text: &MessageText) -> Result<Option<ChatMessage>, SendFailure> {
    let body = PostMessage {
        message: text.as_str().to_owned(),
        id: None,
        name: None,
        room: Some(room.as_str().to_owned()),
    };
    let body = serde_json::to_string(&body).unwrap_or_default();
    let Some(response) = http::fetch("POST", "/message", Some(&body), None).await else {
        return Err(SendFailure {
            sentence: "The message was not sent because the chat cannot be reached. Check your \
                       connection and try again."
                .to_owned(),
            retry_after_secs: None,
        });
    };
    let text = http::text(&response).await;
    let status = response.status();
    if response.ok() {
        // The message is stored either way; if this answer cannot be read, its broadcast will
        // still show it.
        return Ok(serde_json::from_str(&text).ok());
    }
    let retry_after_secs = http::retry_after(&response);
    Err(SendFailure { sentence: refusal(status, &text, retry_after_secs), retry_after_secs })
}

/// What a refused `POST /message` means for the person who pressed Send.
fn refusal(status: u16, reason: &str, retry_after_secs: Option<u32>) -> String {
    match status {
        400 => with_reason("The chat did not accept this message.", reason),
        // The stream that follows the room is still opening (or was refused): the page
        // follows it again on its own, so trying again shortly helps.
        403 if reason.contains("not in room") => "You are not in this room yet, so the message was not \
                                                  sent. Wait a moment for the connection, then try again."
            .to_owned(),
        403 => "This browser is no longer signed in to the chat, so the message was not sent. \
                Reload the page to join again."
            .to_owned(),
        409 => "Your name is in use in another browser, so the message was not sent.".to_owned(),
        413 => "This message is too large to send. Shorten it and try again.".to_owned(),
        415 => "The chat did not understand how this message was sent. Reload the page and try \
                again."
            .to_owned(),
        429 => match retry_after_secs {
            Some(1) | None => {
                "You are sending messages too quickly. Wait a second, then try again.".to_owned()
            }
            Some(secs) => {
                format!("You are sending messages too quickly. Wait {secs} seconds, then try again.")
            }
        },
        503 => "The chat is busy right now, so the message was not sent. Try again in a moment.".to_owned(),
        _ => "Something went wrong on the server, so the message was not sent. Try again.".to_owned(),
    }
}
