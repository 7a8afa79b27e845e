//! `localStorage`, which can be missing or full (private windows, quotas): then the page only
//! forgets things at the next load (who it was, which rooms it followed), and works otherwise.

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

pub fn read(key: &str) -> Option<String> {
    storage()?.get_item(key).ok().flatten()
}

pub fn write(key: &str, value: &str) {
    if let Some(storage) = storage() {
        // A full or disabled storage only costs us remembering: the chat works without it.
        let _ = storage.set_item(key, value);
    }
}

pub fn remove(key: &str) {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(key);
    }
}
