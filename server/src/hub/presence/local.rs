//! Presence for one instance alone: its own [`Room`](super::room::Room) decides every join
//! and leave, at once and under one lock with the stream's subscription to the ring.

use super::{Admission, OpenError, Presence, Roster};
use crate::session::Session;
use app::protocol::{ServerEvent, UserId, UserName};
use futures_util::future::BoxFuture;
use std::time::Duration;

/// The room of a server that shares it with nobody.
pub struct LocalPresence {
    roster: Roster,
    leave_grace: Duration,
}

impl LocalPresence {
    pub fn new(roster: Roster, leave_grace: Duration) -> Self {
        Self { roster, leave_grace }
    }

    fn admit(
        &self,
        id: UserId,
        name: UserName,
        session: Option<&Session>,
        max_streams_per_user: usize,
    ) -> Result<Admission, OpenError> {
        let mut room = self.roster.lock();
        let admitted =
            room.open_stream(id, name, session, max_streams_per_user).map_err(OpenError::Refused)?;
        self.roster.announce(&room, admitted.announce, ServerEvent::NewUser(admitted.user.clone()));
        let view = self.roster.view(&room, &admitted.user.id);
        let hold = LocalHold {
            roster: self.roster.clone(),
            id: admitted.user.id.clone(),
            leave_grace: self.leave_grace,
        };
        Ok(Admission { user: admitted.user, new_session: admitted.new_session, view, hold: Box::new(hold) })
    }
}

impl Presence for LocalPresence {
    fn roster(&self) -> &Roster {
        &self.roster
    }

    fn open<'a>(
        &'a self,
        id: UserId,
        name: UserName,
        session: Option<&'a Session>,
        max_streams_per_user: usize,
    ) -> BoxFuture<'a, Result<Admission, OpenError>> {
        // Decided at once: nothing here waits.
        Box::pin(std::future::ready(self.admit(id, name, session, max_streams_per_user)))
    }

    fn is_healthy(&self) -> bool {
        true
    }
}

/// One stream counted in the local room.
struct LocalHold {
    roster: Roster,
    id: UserId,
    leave_grace: Duration,
}

impl Drop for LocalHold {
    fn drop(&mut self) {
        // Streams are dropped on the runtime's threads; without a runtime (the process is
        // ending) there is nobody left to tell.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let Some(pending) = self.roster.lock().close_stream(&self.id) else { return };
        let (roster, grace) = (self.roster.clone(), self.leave_grace);
        runtime.spawn(async move {
            tokio::time::sleep(grace).await;
            let mut room = roster.lock();
            if let Some((user, announce)) = room.expire(&pending) {
                roster.announce(&room, announce, ServerEvent::UserLeave(user));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        hub::{Frame, Ring},
        metrics::Metrics,
    };
    use std::sync::Arc;

    fn presence(leave_grace: Duration) -> (LocalPresence, Ring) {
        let config = crate::Config::for_tests(std::env::temp_dir());
        let ring = Ring::new(&crate::hub_config(&config), Arc::new(Metrics::default()));
        (LocalPresence::new(Roster::new(ring.clone(), 1_000), leave_grace), ring)
    }

    fn presence_event(frame: Frame) -> String {
        match frame {
            Frame::Presence { bytes, .. } => String::from_utf8_lossy(&bytes).into_owned(),
            other => panic!("not a presence change: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_last_hold_is_a_leave_after_the_grace_period() {
        let (presence, ring) = presence(Duration::from_secs(5));
        let mut watcher = ring.subscribe();
        let (id, name) = (UserId::parse("ann").unwrap(), UserName::parse("Ann").unwrap());
        let first = presence.open(id.clone(), name.clone(), None, 8).await.expect("admitted");
        let session = first.new_session.clone().expect("the first stream binds the id");
        assert!(presence_event(watcher.recv().await.unwrap()).contains("new-user"));
        let second = presence.open(id, name, Some(&session), 8).await.expect("a second tab");
        assert_eq!(second.view.version, 1, "a second tab is no new join");

        drop(first);
        drop(second);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(presence.roster().len(), 1, "still within the grace period");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(presence.roster().len(), 0);
        assert!(presence_event(watcher.recv().await.unwrap()).contains("user-leave"));
        assert!(presence.roster().authorize(&session).is_none(), "the binding is forgotten");
    }
}
