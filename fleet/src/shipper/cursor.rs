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

/// The saved position, if the cursor file is there, readable, and this
/// gateway's. A cursor another gateway saved (a copied or renamed
/// configuration) is ignored: the server's last message decides.
pub(super) fn load_cursor(path: &Path, id: &GatewayId) -> Option<Position> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str::<Cursor>(&text) {
        Ok(c)
            if c.gateway != id.name || (!c.partition.is_empty() && c.partition != id.partition) =>
        {
            tracing::warn!(
                target: "auditring_nats",
                path = %path.display(),
                "the ship cursor is gateway {}/{}'s, not {id}'s; ignored: the server's last message decides",
                c.partition,
                c.gateway
            );
            None
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_used_only_by_its_own_gateway() {
        let dir = std::env::temp_dir().join(format!("auditring-cursor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cursor");
        let id = GatewayId::new("eu", "gw-1");
        let position = Position {
            offset: 42,
            ..Position::default()
        };
        save_cursor(&path, &id, &position).unwrap();
        assert_eq!(load_cursor(&path, &id).map(|p| p.offset), Some(42));
        assert!(load_cursor(&path, &GatewayId::new("eu", "gw-2")).is_none());
        assert!(load_cursor(&path, &GatewayId::new("us", "gw-1")).is_none());
        std::fs::write(&path, "{not json").unwrap();
        assert!(load_cursor(&path, &id).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
