//! The rooms: the sidebar of the rooms this browser follows ([`RoomList`]), each a link to its
//! address with its unread count and a mark when a message there mentions the viewer; a form
//! to join or create a room by name (checked with the protocol's rules before anything is
//! asked); and "Browse rooms", the server's list (`GET /rooms`) with each room's people. Above
//! the conversation, [`RoomHeader`] names the room shown and offers to leave it.
//!
//! Joining a room is going to its address: the page follows the address (see `chat_page.rs`),
//! so a link, the form, back and forward all take the same path.

use super::{join_form::NameError, panel_toggle::PanelToggle, truth, user_list::grouped};
use crate::{
    model::{
        ChatActions, ChatSignals, FollowedRoom, Permission,
        rooms::{parse_room, room_path},
    },
    protocol::{RoomList as ServerRooms, RoomName},
};
use leptos::{
    either::EitherOf3,
    ev::{MouseEvent, SubmitEvent},
    html,
    prelude::*,
};
use leptos_router::hooks::use_navigate;

/// The sidebar: the rooms followed, the join form, the server's rooms. `on_open` is called when
/// a room is opened from here (narrow screens fold the panel then).
#[component]
pub fn RoomList(
    /// The room shown.
    current: Memo<RoomName>,
    #[prop(into)] on_open: Callback<()>,
) -> impl IntoView {
    let chat = ChatSignals::expect();
    let rooms = move || chat.followed.with(|followed| followed.rooms().to_vec());
    let go = follow_link(on_open);
    view! {
        <div class="room-list">
            <h2 id="room-list-title">"Rooms"</h2>
            <ul data-testid="room-list" aria-labelledby="room-list-title">
                <For
                    each=rooms
                    key=|room| (room.name.clone(), room.unread, room.mentioned)
                    let:room
                >
                    {room_entry(room, current, go)}
                </For>
            </ul>
            {move || {
                chat.room_error
                    .get()
                    .map(|error| {
                        view! {
                            <p data-testid="room-error" class="error" role="alert">
                                {error}
                            </p>
                        }
                    })
            }}
            <JoinRoom on_open/>
            <BrowseRooms go/>
            <NotificationSetting/>
        </div>
    }
}

/// Desktop notifications: a button that asks the browser (never asked on load), or where
/// they stand once answered.
#[component]
fn NotificationSetting() -> impl IntoView {
    let chat = ChatSignals::expect();
    let ask = ChatActions::expect().ask_permission;
    move || match chat.permission.get() {
        Permission::Unsupported => None,
        Permission::Ask => Some(EitherOf3::A(view! {
            <div class="notify-setting">
                <button type="button" class="secondary" data-testid="notifications-button" on:click=move |_| ask.run(())>
                    "Turn on notifications"
                </button>
                <p class="hint">"For mentions of your name, and rooms set to notify of all, while the chat is out of sight."</p>
            </div>
        })),
        Permission::Granted => Some(EitherOf3::B(view! {
            <p class="notify-setting hint" data-testid="notifications-on">
                "Notifications are on: mentions of your name, and rooms set to notify of all, while no tab of the chat is in view."
            </p>
        })),
        Permission::Denied => Some(EitherOf3::C(view! {
            <p class="notify-setting hint" data-testid="notifications-blocked">
                "Notifications are blocked in this browser's settings for this site."
            </p>
        })),
    }
}

/// One followed room: its link, its unread count and its mention mark.
fn room_entry(
    room: FollowedRoom,
    current: Memo<RoomName>,
    go: Callback<(MouseEvent, String)>,
) -> impl IntoView {
    let FollowedRoom { name, unread, mentioned } = room;
    let href = room_path(&name);
    let to = href.clone();
    let label = name.to_string();
    let data_room = label.clone();
    let is_current = {
        let name = name.clone();
        move || current.with(|current| *current == name)
    };
    let is_current_too = is_current.clone();
    view! {
        <li data-testid="room" data-room=data_room class:current=is_current>
            <a
                href=href
                aria-current=move || is_current_too().then_some("page")
                on:click=move |ev| go.run((ev, to.clone()))
            >
                <span class="room-name">
                    <span aria-hidden="true">"# "</span>
                    {label}
                </span>
                {mentioned
                    .then(|| {
                        view! {
                            <span data-testid="room-mention" class="mention" title="You were mentioned">
                                "@"
                                <span class="sr-only">" mentions you"</span>
                            </span>
                        }
                    })}
                {(unread > 0)
                    .then(|| {
                        view! {
                            <span data-testid="room-unread" class="unread">
                                {grouped(u64::from(unread))}
                                <span class="sr-only">" unread"</span>
                            </span>
                        }
                    })}
            </a>
        </li>
    }
}

/// What a click on a room's link does: a plain click moves the address in this page (which
/// the chat follows) and folds the panel; with a modifier key the browser does what it would
/// (a new tab, a new window). Done here rather than left to the router's own handling of link
/// clicks, which did not move the address once the routes were no longer rendered in the
/// browser (see `App` in `lib.rs`); `use_navigate` does.
fn follow_link(on_open: Callback<()>) -> Callback<(MouseEvent, String)> {
    let navigate = use_navigate();
    Callback::new(move |(ev, path): (MouseEvent, String)| {
        if ev.button() != 0 || ev.ctrl_key() || ev.meta_key() || ev.shift_key() || ev.alt_key() {
            return;
        }
        ev.prevent_default();
        on_open.run(());
        navigate(&path, Default::default());
    })
}

/// Join or create a room by name: the name is checked with the protocol's rules here, and the
/// room's address does the rest.
#[component]
fn JoinRoom(on_open: Callback<()>) -> impl IntoView {
    let input: NodeRef<html::Input> = NodeRef::new();
    let error = RwSignal::new(None::<String>);
    let navigate = use_navigate();
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Some(field) = input.get() else { return };
        match parse_room(&field.value()) {
            Ok(room) => {
                error.set(None);
                field.set_value("");
                on_open.run(());
                navigate(&room_path(&room), Default::default());
            }
            Err(reason) => error.set(Some(reason)),
        }
    };
    view! {
        <form data-testid="join-room" class="join-room" on:submit=submit>
            <label for="room-name">"Join or create a room"</label>
            <div class="join-row">
                <input
                    id="room-name"
                    name="room"
                    type="text"
                    autocomplete="off"
                    spellcheck="false"
                    placeholder="room-name"
                    node_ref=input
                    aria-invalid=move || truth(error.with(Option::is_some))
                    aria-describedby=move || error.with(Option::is_some).then_some("room-name-error")
                />
                <button type="submit" class="secondary">"Join"</button>
            </div>
            <NameError id="room-name-error" error=error/>
        </form>
    }
}

/// "Browse rooms": the server's rooms, most recently active first, with their people.
#[component]
fn BrowseRooms(go: Callback<(MouseEvent, String)>) -> impl IntoView {
    let list_rooms = ChatActions::expect().list_rooms;
    let open = RwSignal::new(false);
    let list = RwSignal::new(None::<Result<ServerRooms, String>>);
    let load = move || {
        list.set(None);
        let reply = list_rooms.run(());
        leptos::task::spawn_local(async move {
            let answer = reply.await;
            let _ = list.try_set(Some(answer));
        });
    };
    let toggle = move |_| {
        let opening = !open.get_untracked();
        open.set(opening);
        if opening {
            load();
        }
    };
    view! {
        <div class="browse-rooms">
            <button
                type="button"
                class="secondary"
                data-testid="browse-rooms"
                aria-expanded=move || truth(open.get())
                aria-controls="server-rooms"
                on:click=toggle
            >
                // The same words open or shut: `aria-expanded` says which, and the list shows it.
                "Browse rooms"
            </button>
            <div id="server-rooms">
                {move || open.get().then(|| view! { <div>{move || server_rooms(list.get(), go)}</div> })}
            </div>
        </div>
    }
}

/// The server's rooms as listed, or where the list stands.
fn server_rooms(
    list: Option<Result<ServerRooms, String>>,
    go: Callback<(MouseEvent, String)>,
) -> impl IntoView {
    match list {
        None => EitherOf3::A(view! { <p class="sample" role="status">"Loading…"</p> }),
        Some(Err(reason)) => EitherOf3::B(view! { <p class="error" role="alert">{reason}</p> }),
        Some(Ok(list)) => {
            let rooms = list
                .rooms
                .into_iter()
                .map(|room| {
                    let people = if room.users == 1 {
                        "1 person".to_owned()
                    } else {
                        format!("{} people", grouped(room.users))
                    };
                    let to = room_path(&room.room);
                    let activity = if room.last_seq.is_some() { "active" } else { "no messages yet" };
                    view! {
                        <li data-testid="server-room" data-room=room.room.to_string()>
                            <a href=to.clone() on:click=move |ev| go.run((ev, to.clone()))>
                                <span aria-hidden="true">"# "</span>
                                {room.room.to_string()}
                            </a>
                            <span class="room-meta">{format!("{people} · {activity}")}</span>
                        </li>
                    }
                })
                .collect_view();
            EitherOf3::C(
                view! { <ul data-testid="server-rooms" aria-label="The server's rooms">{rooms}</ul> },
            )
        }
    }
}

/// The room shown: its name, and a way to stop following it (not the last room followed: a
/// page always follows one). On narrow screens it also holds the toggle of the rooms panel,
/// with the count of messages unread elsewhere.
#[component]
pub fn RoomHeader(
    /// The room shown.
    current: Memo<RoomName>,
    /// Whether the rooms panel is unfolded (narrow screens).
    rooms_open: RwSignal<bool>,
    /// Folded when the rooms panel opens: one panel at a time.
    people_open: RwSignal<bool>,
    /// The toggle, so Escape can put the focus back on it.
    toggle: NodeRef<html::Button>,
    #[prop(into)] unread_elsewhere: Signal<u64>,
) -> impl IntoView {
    let chat = ChatSignals::expect();
    let ChatActions { leave_room, notify_all, .. } = ChatActions::expect();
    let notifies_all = move || chat.notify_rooms.with(|rooms| current.with(|room| rooms.contains(room)));
    let alone = move || chat.followed.with(|followed| followed.rooms().len() <= 1);
    view! {
        <div class="room-header">
            <PanelToggle
                controls="rooms"
                testid="rooms-toggle"
                class="rooms-toggle secondary"
                open=rooms_open
                other=people_open
                button=toggle
            >
                "Rooms"
                {move || {
                    let unread = unread_elsewhere.get();
                    (unread > 0)
                        .then(|| {
                            view! {
                                <span class="unread">
                                    {grouped(unread)}
                                    <span class="sr-only">" unread"</span>
                                </span>
                            }
                        })
                }}
            </PanelToggle>
            <h2 data-testid="room-title">
                <span aria-hidden="true">"# "</span>
                {move || current.get().to_string()}
            </h2>
            {move || {
                (chat.permission.get() != Permission::Unsupported)
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                class="secondary notify-toggle"
                                data-testid="notify-all"
                                aria-pressed=move || truth(notifies_all())
                                title="Notify me of every message in this room, not only of mentions"
                                on:click=move |ev| {
                                    ev.stop_propagation();
                                    notify_all.run((current.get_untracked(), !notifies_all()));
                                }
                            >
                                "Notify of all"
                            </button>
                        }
                    })
            }}
            {move || {
                (!alone())
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                class="secondary"
                                data-testid="leave-room"
                                on:click=move |_| leave_room.run(current.get_untracked())
                            >
                                "Leave room"
                            </button>
                        }
                    })
            }}
        </div>
    }
}
