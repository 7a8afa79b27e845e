//! Who this browser is: a random id made once and kept in `localStorage` (`ssechat.id`), and the
//! name it last joined with (`ssechat.name`), so a reload rejoins as the same user. Storage can
//! be missing or full (private windows, quotas); then the id lives only as long as the page.

use super::storage::{read, remove, write};
use crate::protocol::{UserId, UserName};
use wasm_bindgen::JsValue;

const ID_KEY: &str = "ssechat.id";
const NAME_KEY: &str = "ssechat.name";

/// This browser's id: the stored one if it is valid, else a new one, stored for next time.
pub fn user_id() -> UserId {
    if let Some(id) = read(ID_KEY).and_then(|raw| UserId::parse(&raw).ok()) {
        return id;
    }
    let id = random_uuid().and_then(|raw| UserId::parse(&raw).ok()).unwrap_or_else(random_hex_id);
    write(ID_KEY, id.as_str());
    id
}

/// `crypto.randomUUID()`, which browsers only offer in secure contexts (https, localhost):
/// calling it elsewhere would throw, so look before calling.
fn random_uuid() -> Option<String> {
    let crypto = web_sys::window()?.crypto().ok()?;
    let available = js_sys::Reflect::get(&crypto, &JsValue::from_str("randomUUID"))
        .is_ok_and(|function| function.is_function());
    available.then(|| crypto.random_uuid())
}

/// 128 random bits as hex, for pages served over plain http from another host.
/// `getRandomValues` works in every context; `Math.random` is the last resort.
fn random_hex_id() -> UserId {
    let mut bytes = [0u8; 16];
    let filled = web_sys::window()
        .and_then(|window| window.crypto().ok())
        .is_some_and(|crypto| crypto.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        for byte in &mut bytes {
            *byte = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    // 32 lowercase hex digits are always within the id alphabet and length.
    UserId::parse(&hex).expect("hex digits form a valid id")
}

/// The name this browser last joined with, if it is still a valid name.
pub fn stored_name() -> Option<UserName> {
    read(NAME_KEY).and_then(|raw| UserName::parse(&raw).ok())
}

pub fn remember_name(name: &UserName) {
    write(NAME_KEY, name.as_str());
}

/// Forgets the name only: the next page load shows the join form, with the same id.
pub fn forget_name() {
    remove(NAME_KEY);
}

/// Forgets name and id: the next join is a new user.
pub fn forget() {
    remove(NAME_KEY);
    remove(ID_KEY);
}

/// The `name` a join form submitted before hydration put in the address (`/?name=…`). It is
/// removed from the address at once, so a reload or a copied link does not join with it again.
pub fn take_name_from_url() -> Option<String> {
    let window = web_sys::window()?;
    let location = window.location();
    let search = location.search().ok()?;
    let name = web_sys::UrlSearchParams::new_with_str(&search).ok()?.get("name")?;
    if let (Ok(path), Ok(history)) = (location.pathname(), window.history()) {
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&path));
    }
    Some(name)
}
