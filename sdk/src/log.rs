//! Structured logs into the host's tracing, attributed to the plugin and the run.
//!
//! Never log record bodies or anything secret: the host keeps logs, and operators read them.

use crate::bindings::connector::weft::plugin::log::{Level, log};

fn emit(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    log(level, message, &fields);
}

/// Detail for debugging a plugin. `fields` become structured fields of the host's event.
pub fn debug(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Debug, message, fields)
}
/// Progress worth keeping, such as the pages a read went through.
pub fn info(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Info, message, fields)
}
/// Something unexpected the call recovered from.
pub fn warn(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Warn, message, fields)
}
/// A failure worth an operator's attention. Logging does not fail the call: return an
/// [`Error`](crate::Error) for that.
pub fn error(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Error, message, fields)
}
