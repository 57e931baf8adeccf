//! This network's CA bundle as peers fetch it (`GET /_rampart/bundle`) and as its catalog
//! announces it to them: read from the CA file, and read again when the file changes (a CA
//! rotation puts the new CA beside the old one), so peers follow without a restart here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use rampart_pki::bundle::Bundle;

/// The bundle served now, and the file it comes from.
#[derive(Debug, Default)]
pub struct OwnBundle {
    path: Option<PathBuf>,
    current: ArcSwapOption<Bundle>,
}

impl OwnBundle {
    /// The bundle in `path` (none served, said in the log, while it cannot be read).
    pub fn from_file(path: PathBuf) -> Self {
        let own = OwnBundle { current: ArcSwapOption::empty(), path: Some(path) };
        own.reload();
        own
    }

    /// The bundle served now.
    pub fn current(&self) -> Option<Arc<Bundle>> {
        self.current.load_full()
    }

    /// Reads the file again; a file that does not parse keeps the bundle served before.
    fn reload(&self) {
        let Some(path) = &self.path else { return };
        match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| Bundle::parse(&b).map_err(|e| e.to_string()))
        {
            Ok(bundle) => {
                if self.current.load().as_ref().is_none_or(|b| b.fingerprint() != bundle.fingerprint()) {
                    tracing::info!("serving the CA bundle {} from {}", bundle.fingerprint(), path.display());
                }
                self.current.store(Some(Arc::new(bundle)));
            }
            Err(e) => tracing::warn!("CA bundle {}: {e}; serving the previous one", path.display()),
        }
    }

    /// Reads the file again whenever it changes (checked every `every`), until the task stops.
    pub(crate) async fn follow(self: Arc<Self>, every: Duration) {
        let Some(path) = self.path.clone() else { return };
        let modified = || std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let mut seen: Option<SystemTime> = modified();
        loop {
            tokio::time::sleep(every).await;
            let now = modified();
            if now != seen {
                seen = now;
                self.reload();
            }
        }
    }
}
