//! The chat page's state, as plain types and signals, below both the views and the browser:
//! the views (`components/`) read it, the browser side (`client/`, browser build only) writes
//! it, and neither knows the other. Nothing here touches the DOM or the network, so the rules are tested
//! without a browser and the server build renders the same empty page the browser hydrates.
//!
//! One concept per file: the conversation ([`timeline`]) and message times ([`time`]); who is in
//! the room ([`roster`]); one room's state ([`room`]) and the rooms followed ([`rooms`]); the stream's state ([`connection`]); what the tabs of one browser tell each other ([`tabs`]); a failed send ([`send`]); names
//! typed into forms ([`names`]); desktop notifications ([`notify`]); [`ChatSignals`] ([`signals`]), which holds them all for the
//! page; and what the page can ask of the browser: [`ChatActions`] ([`actions`]), the clock
//! of message times ([`time::Clock`]) and being told when an element changes size
//! ([`ResizeWatch`], [`resize`]).

pub mod actions;
pub mod connection;
pub mod names;
pub mod notify;
pub mod resize;
pub mod room;
pub mod rooms;
pub mod roster;
pub mod send;
pub mod signals;
pub mod tabs;
pub mod time;
pub mod timeline;

pub use actions::{ChatActions, Reply};
pub use connection::ConnectionState;
pub use names::{capitalised, parse_name};
pub use notify::{NotifyRooms, Permission};
pub use resize::ResizeWatch;
pub use room::{RoomState, ScrollBack};
pub use rooms::{Followed, FollowedRoom};
pub use roster::{Everyone, Roster};
pub use send::SendFailure;
pub use signals::{ChatSignals, FocusNext};
pub use timeline::{Line, Notice, Row, Shown, Timeline};

/// The room's name, in the header and the tab title.
pub const ROOM_NAME: &str = "ssechat";
