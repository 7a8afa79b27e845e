//! The page, put together: a header with the app's name, the connection's state and (once
//! joined) the people toggle and the account menu; then either the join form or the
//! chat: the rooms followed ([`RoomList`]) and the people of the room shown beside the
//! conversation (folded away behind toggles on narrow screens: the people's in the header, the
//! rooms' in the room's own header), the room's messages and its composer.
//!
//! The address names the room shown: a change of address (a link, back, forward) asks the
//! browser side to open that room, and when the browser side shows another room (one left, one
//! refused) the address follows, replacing the history entry.

use super::{
    account::AccountMenu,
    composer::Composer,
    join_form::JoinForm,
    message_list::MessageList,
    panel_toggle::PanelToggle,
    room_list::{RoomHeader, RoomList},
    status::{ConnectionError, ConnectionStatus},
    user_list::{UserList, grouped},
};
use crate::{
    model::{
        ChatActions, ChatSignals, FocusNext, ROOM_NAME, RoomState, Roster, Timeline,
        rooms::{room_from_path, room_path},
    },
    protocol::{ChatMessage, RoomName},
};
use leptos::{either::Either, ev, html, prelude::*};
use leptos_router::{NavigateOptions, hooks::use_location, hooks::use_navigate};

/// The one page of the app.
#[component]
pub fn ChatPage() -> impl IntoView {
    let chat = ChatSignals::expect();
    let ChatActions { join, rename, leave, start_over, open_room, .. } = ChatActions::expect();
    follow_the_address(chat, open_room);
    let join = Callback::new(move |name| {
        chat.focus_next.set(Some(FocusNext::Composer));
        join.run(name);
    });
    let leave = Callback::new(move |()| {
        chat.focus_next.set(Some(FocusNext::JoinName));
        leave.run(());
    });
    let sent = Callback::new(move |message: ChatMessage| {
        chat.room(&message.room.clone()).timeline.update(|timeline| {
            timeline.add_message(message);
        });
    });

    let joined = Memo::new(move |_| chat.me.with(Option::is_some));
    let current = Memo::new(move |_| chat.current.get());
    remember_what_was_seen(chat, current);
    // Whether the people or rooms panel is unfolded (narrow screens only; wide ones always
    // show both).
    let people_open = RwSignal::new(false);
    let rooms_open = RwSignal::new(false);
    let count = move || grouped(chat.room(&current.get()).roster.with(Roster::count));
    let unread_elsewhere = move || {
        chat.followed.with(|followed| followed.rooms().iter().map(|room| u64::from(room.unread)).sum::<u64>())
    };
    let people_toggle: NodeRef<html::Button> = NodeRef::new();
    let rooms_toggle: NodeRef<html::Button> = NodeRef::new();
    // Escape folds an open panel from anywhere, and the focus goes back to its toggle; a click
    // on the conversation (which the panels cover in part) folds them too.
    let close_panels = move |event: ev::KeyboardEvent| {
        if event.key() != "Escape" {
            return;
        }
        for (open, toggle) in [(people_open, people_toggle), (rooms_open, rooms_toggle)] {
            if open.get_untracked() {
                open.set(false);
                if let Some(toggle) = toggle.get_untracked() {
                    let _ = toggle.focus();
                }
            }
        }
    };
    let path = use_location().pathname.get_untracked();

    view! {
        <div class="app" on:keydown=close_panels>
            <header class="app-header">
                <div class="room">
                    <h1>{ROOM_NAME}</h1>
                    {move || joined.get().then(|| view! { <ConnectionStatus state=chat.status/> })}
                </div>
                {move || {
                    joined
                        .get()
                        .then(|| {
                            view! {
                                <PanelToggle
                                    controls="people"
                                    testid="people-toggle"
                                    class="people-toggle secondary"
                                    open=people_open
                                    other=rooms_open
                                    button=people_toggle
                                >
                                    "People "
                                    <span class="count">{count}</span>
                                </PanelToggle>
                                <AccountMenu me=chat.me on_rename=rename on_leave=leave/>
                            }
                        })
                }}
            </header>
            {move || {
                if joined.get() {
                        Either::Left(view! {
                            <div
                                class="chat"
                                class:people-open=move || people_open.get()
                                class:rooms-open=move || rooms_open.get()
                            >
                                <nav id="rooms" class="rooms-panel" aria-labelledby="room-list-title">
                                    <RoomList current on_open=Callback::new(move |()| rooms_open.set(false))/>
                                </nav>
                                <aside id="people" class="sidebar" aria-labelledby="user-list-title">
                                    {move || {
                                        let room = current.get();
                                        let roster = RwSignal::from(chat.room(&room).roster);
                                        view! { <UserList room roster me=chat.me/> }
                                    }}
                                </aside>
                                <main
                                    class="conversation"
                                    on:click=move |_| {
                                        people_open.set(false);
                                        rooms_open.set(false);
                                    }
                                >
                                    <RoomHeader
                                        current
                                        rooms_open
                                        people_open
                                        toggle=rooms_toggle
                                        unread_elsewhere=Signal::derive(unread_elsewhere)
                                    />
                                    <ConnectionError error=chat.connection_error on_start_over=start_over/>
                                    {move || {
                                        let room = current.get();
                                        let state = chat.room(&room);
                                        let first_new = first_new(chat, state.clone());
                                        view! {
                                            <MessageList
                                                first_new
                                                room=room.clone()
                                                timeline=RwSignal::from(state.timeline)
                                                scroll_back=RwSignal::from(state.scroll_back)
                                                me=chat.me
                                            />
                                            <Composer
                                                room
                                                draft=RwSignal::from(state.draft)
                                                in_room=RwSignal::from(state.in_room)
                                                status=chat.status
                                                on_sent=sent
                                            />
                                        }
                                    }}
                                </main>
                            </div>
                        })
                } else {
                        Either::Right(view! {
                            <main class="join">
                                <JoinForm
                                    action=path.clone()
                                    on_join=join
                                    error=chat.join_error
                                    info=chat.join_info
                                />
                            </main>
                        })
                }
            }}
        </div>
    }
}

/// Where "New since you were last here" goes in a room shown again: the first message by
/// someone else after what the room showed when the viewer left it (in this page, or before a
/// reload). Decided once, when the room's history is in (at once for a room already
/// loaded); messages that arrive while the viewer reads are not "since you were last here".
fn first_new(chat: ChatSignals, state: RoomState) -> Signal<Option<u64>> {
    let decided = Memo::new(move |before: Option<&(bool, Option<u64>)>| {
        if let Some(&(true, seq)) = before {
            return (true, seq);
        }
        if chat.history_arriving.get() {
            return (false, None);
        }
        untrack(|| {
            let Some(seen) = state.seen_through.get_untracked() else { return (true, None) };
            let me = chat.me.with_untracked(|me| me.as_ref().map(|me| me.id.clone()));
            (true, state.timeline.with_untracked(|timeline| timeline.first_new_after(seen, me.as_ref())))
        })
    });
    Signal::derive(move || decided.get().1)
}

/// Records, for the room the viewer leaves for another, the newest message it showed.
fn remember_what_was_seen(chat: ChatSignals, current: Memo<RoomName>) {
    Effect::new(move |previous: Option<RoomName>| {
        let now = current.get();
        if let Some(previous) = previous
            && previous != now
        {
            let state = chat.room(&previous);
            let newest = state.timeline.with_untracked(Timeline::newest_seq);
            if newest.is_some() {
                state.seen_through.set(newest);
            }
        }
        now
    });
}

/// Keeps the room shown and the address in step (see the module's documentation). Effects:
/// only the browser runs them.
fn follow_the_address(chat: ChatSignals, open_room: Callback<crate::protocol::RoomName>) {
    let location = use_location();
    let navigate = use_navigate();
    let replace = || NavigateOptions { replace: true, scroll: false, ..NavigateOptions::default() };
    let to_address = navigate.clone();
    Effect::new(move |_| {
        let Some(Ok(room)) = room_from_path(&location.pathname.get()) else { return };
        untrack(|| {
            open_room.run(room.clone());
            let shown = chat.current.get_untracked();
            if shown != room {
                to_address(&room_path(&shown), replace());
            }
        });
    });
    Effect::new(move |_| {
        let shown = chat.current.get();
        let at = untrack(|| room_from_path(&location.pathname.get()));
        if at != Some(Ok(shown.clone())) {
            navigate(&room_path(&shown), replace());
        }
    });
}
