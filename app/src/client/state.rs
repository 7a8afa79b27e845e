//! How each server event changes what the page shows: the one place that maps the protocol's
//! events onto the page's signals ([`ChatSignals`]), each in the room the event names. The
//! rules themselves (one entry per user, messages de-duplicated and ordered by `seq`, what
//! counts as unread) live in `Roster`, `Timeline` and `Followed`, next to the views that show
//! them. A message from someone else counts as unread in its room's sidebar entry when another
//! room is shown, and in the tab's title while the viewer is away from the tab (see `super::title`).

use crate::{
    model::{ChatSignals, Notice, rooms::mentions},
    protocol::{RoomName, ServerEvent},
};
use leptos::prelude::*;

/// Whether the tab applying an event is the one that raises notifications: the tab holding
/// the browser's stream, so that a browser raises one per message however many tabs it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notifying {
    Here,
    Elsewhere,
}

/// Applies one decoded event about `room`. Events about a room no longer followed (the old
/// stream's last words after leaving it) are dropped. A new message by someone else, after
/// the history, is considered for a notification when `notifying` says so.
pub fn apply(chat: &ChatSignals, room: &RoomName, event: ServerEvent, notifying: Notifying) {
    if !chat.followed.with_untracked(|followed| followed.contains(room)) {
        return;
    }
    let state = chat.room(room);
    match event {
        ServerEvent::AllUsers(users) => {
            state.roster.update(|roster| roster.replace(users));
            // The stream's first word about the room: from now on a post there is taken.
            state.in_room.maybe_update(|in_room| !std::mem::replace(in_room, true));
        }
        ServerEvent::Users(users) => {
            state.roster.update(|roster| roster.replace(users));
        }
        ServerEvent::NewUser(user) => {
            // A join that a snapshot already showed is neither re-rendered nor announced.
            let name = user.name.clone();
            let mut added = false;
            state.roster.maybe_update(|roster| {
                added = roster.add(user);
                added
            });
            if added {
                state.timeline.update(|timeline| timeline.add_notice(Notice::Joined(name)));
            }
        }
        ServerEvent::UserLeave(user) => {
            let mut removed = false;
            state.roster.maybe_update(|roster| {
                removed = roster.remove(&user.id).is_some();
                removed
            });
            if removed {
                state.timeline.update(|timeline| timeline.add_notice(Notice::Left(user.name)));
            }
        }
        ServerEvent::Message(message) => {
            let (by_me, mentions_me) = chat.me.with_untracked(|me| match me {
                Some(me) => (me.id == message.id, mentions(message.message.as_str(), me.name.as_str())),
                None => (false, false),
            });
            let seq = message.seq;
            let mut added = false;
            state.timeline.maybe_update(|timeline| {
                added = timeline.add_message(message);
                added
            });
            let shown = chat.current.with_untracked(|current| current == room);
            if added && !by_me && !shown {
                chat.followed.maybe_update(|followed| followed.count_unread(room, seq, mentions_me));
            }
            if added && !by_me && super::title::is_away() {
                chat.unread.update(|unread| *unread += 1);
            }
            let news = added && !by_me && chat.followed.with_untracked(|followed| followed.is_news(seq));
            if news && notifying == Notifying::Here {
                state.timeline.with_untracked(|timeline| {
                    if let Some(message) = timeline.message(seq) {
                        super::notify::consider(*chat, message, mentions_me);
                    }
                });
            }
        }
        ServerEvent::HistoryGap(_) => {
            state.timeline.update(|timeline| timeline.add_notice(Notice::Gap));
        }
        ServerEvent::Presence(presence) => {
            let me = chat.me.with_untracked(|me| me.as_ref().map(|me| me.id.clone()));
            state.roster.update(|roster| roster.apply_presence(presence, me.as_ref()));
        }
    }
}
