//! The browser's clock and the reader's locale and time zone, for message times and how long
//! ago they were. The rules
//! (parsing, relative times, grouping) are plain Rust in `crate::model::time`; only these need
//! JavaScript. [`clock`] hands them to the page as a [`Clock`].

use crate::model::time::{Ago, Clock};
use leptos::prelude::*;

/// The browser's clock and locale, for the page's context.
pub fn clock() -> Clock {
    Clock {
        now: Callback::new(|()| now_ms()),
        local: Callback::new(|(ts_ms, full)| local(ts_ms, full)),
        relative: Callback::new(relative),
    }
}

/// Now, by the browser's clock.
fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// `ts_ms` in the reader's locale and time zone: `full` for the exact time ("Tuesday,
/// 24 November 2026 at 10:00:05"), or a short date and time for messages older than a day.
///
/// Building an `Intl.DateTimeFormat` costs far more than using one (it resolves the locale and
/// time zone), so the two are built once per page and kept here.
fn local(ts_ms: f64, full: bool) -> String {
    use wasm_bindgen::JsValue;
    thread_local! {
        static FULL: js_sys::Function = formatter("full", "medium");
        static SHORT: js_sys::Function = formatter("medium", "short");
    }
    let date = js_sys::Date::new(&JsValue::from_f64(ts_ms));
    let format = |format: &js_sys::Function| {
        format.call1(&JsValue::UNDEFINED, &date).ok().and_then(|text| text.as_string()).unwrap_or_default()
    };
    if full { FULL.with(format) } else { SHORT.with(format) }
}

/// The `format` function of an `Intl.DateTimeFormat` in the browser's locale (bound to it, so it
/// can be called on its own).
fn formatter(date_style: &str, time_style: &str) -> js_sys::Function {
    use wasm_bindgen::JsValue;
    let options = js_sys::Object::new();
    let set = |key: &str, value: &str| {
        let _ = js_sys::Reflect::set(&options, &JsValue::from_str(key), &JsValue::from_str(value));
    };
    set("dateStyle", date_style);
    set("timeStyle", time_style);
    // `undefined` as the locale means the browser's own.
    js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &options).format()
}

/// How long ago, in the reader's language, with `Intl.RelativeTimeFormat` (short style, and
/// "now" rather than "0 seconds ago"); built once per page, like the date formatters.
fn relative(ago: Ago) -> String {
    use wasm_bindgen::JsValue;
    thread_local! {
        static FORMAT: js_sys::Intl::RelativeTimeFormat = {
            let options = js_sys::Object::new();
            let set = |key: &str, value: &str| {
                let _ = js_sys::Reflect::set(&options, &JsValue::from_str(key), &JsValue::from_str(value));
            };
            set("numeric", "auto");
            set("style", "short");
            js_sys::Intl::RelativeTimeFormat::new(&js_sys::Array::new(), &options)
        };
    }
    let (value, unit) = match ago {
        Ago::Now => (0.0, "second"),
        Ago::Minutes(minutes) => (-(minutes as f64), "minute"),
        Ago::Hours(hours) => (-(hours as f64), "hour"),
    };
    FORMAT.with(|format| String::from(format.format(value, unit)))
}
