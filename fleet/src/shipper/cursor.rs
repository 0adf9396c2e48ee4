//! The cursor saved between runs: where the spool stood after the last
//! acknowledged batch.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::GatewayId;
use crate::spool::Position;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cursor {
    #[serde(default)]
    partition: String,
    gateway: String,
    position: Position,
}

/// The saved position, if the cursor file is there and readable.
pub(super) fn load_cursor(path: &Path) -> Option<Position> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str::<Cursor>(&text) {
        Ok(c) => Some(c.position),
        Err(e) => {
            tracing::warn!(target: "auditring_nats", path = %path.display(), error = %e, "unreadable ship cursor; the server's last message decides");
            None
        }
    }
}

/// Saves `position` (written aside, then renamed over the cursor).
pub(super) fn save_cursor(path: &Path, id: &GatewayId, position: &Position) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let text = serde_json::to_string(&Cursor {
        partition: id.partition.clone(),
        gateway: id.name.clone(),
        position: position.clone(),
    })
    .map_err(io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
