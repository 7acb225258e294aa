//! `rampart maintenance [on|off]`: every request answered 503 with the 503
//! error page, switched at once without a reload.

use std::path::Path;

use anyhow::Result;

use super::Output;
use crate::{
    cli::MaintenanceVerb,
    control_socket::{client::call, protocol::Request},
};

pub fn run(out: &Output, socket: &Path, verb: Option<&MaintenanceVerb>) -> Result<()> {
    let on = match verb {
        None | Some(MaintenanceVerb::Show) => None,
        Some(MaintenanceVerb::On) => Some(true),
        Some(MaintenanceVerb::Off) => Some(false),
    };
    let data = call(socket, &Request::Maintenance { on })?;
    out.emit(&data, || text(&data));
    Ok(())
}

fn text(data: &serde_json::Value) -> String {
    let page = if data["page"].as_bool() == Some(true) {
        "the 503 [[error_page]]"
    } else {
        "a short text (no 503 [[error_page]] is configured)"
    };
    if data["maintenance"].as_bool() == Some(true) {
        format!("maintenance on: every request gets 503 with {page}\n")
    } else {
        "maintenance off: requests are served\n".to_string()
    }
}
