//! How each server event changes what the page shows: the one place that maps the protocol's
//! events onto the page's signals ([`ChatSignals`]). The rules themselves (one entry per user,
//! messages de-duplicated and ordered by `seq`) live in `Roster` and `Timeline`, next to the
//! views that show them. A message from someone else that arrives while the tab is hidden
//! counts as unread (see `super::tab`).

use crate::{
    model::{ChatSignals, Notice},
    protocol::ServerEvent,
};
use leptos::prelude::*;

/// Applies one decoded event.
pub fn apply(chat: &ChatSignals, event: ServerEvent) {
    match event {
        ServerEvent::AllUsers(users) | ServerEvent::Users(users) => {
            chat.roster.update(|roster| roster.replace(users));
        }
        ServerEvent::NewUser(user) => {
            // A join that a snapshot already showed is neither re-rendered nor announced.
            let name = user.name.clone();
            let mut added = false;
            chat.roster.maybe_update(|roster| {
                added = roster.add(user);
                added
            });
            if added {
                chat.timeline.update(|timeline| timeline.add_notice(Notice::Joined(name)));
            }
        }
        ServerEvent::UserLeave(user) => {
            let mut removed = false;
            chat.roster.maybe_update(|roster| {
                removed = roster.remove(&user.id).is_some();
                removed
            });
            if removed {
                chat.timeline.update(|timeline| timeline.add_notice(Notice::Left(user.name)));
            }
        }
        ServerEvent::Message(message) => {
            let by_me = chat.me.with_untracked(|me| me.as_ref().is_some_and(|me| me.id == message.id));
            let mut added = false;
            chat.timeline.maybe_update(|timeline| {
                added = timeline.add_message(message);
                added
            });
            if added && !by_me && super::tab::is_hidden() {
                chat.unread.update(|unread| *unread += 1);
            }
        }
        ServerEvent::HistoryGap(_) => {
            chat.timeline.update(|timeline| timeline.add_notice(Notice::Gap));
        }
        ServerEvent::Presence(presence) => {
            let me = chat.me.with_untracked(|me| me.as_ref().map(|me| me.id.clone()));
            chat.roster.update(|roster| roster.apply_presence(presence, me.as_ref()));
        }
    }
}
