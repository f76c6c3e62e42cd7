//! Sockets follow their session (docs/API.md §7.5): when a session ends,
//! the worker closes its WebSocket connections.
//!
//! A session ends in one of two writes, both seen here as a `MODIFY`:
//! - the session item turns `revoked` (logout, a reused refresh token);
//! - the user item's `sessionsValidAfter` moves forward, or its status
//!   leaves `active` (password reset, suspension, deletion), which ends
//!   every session created before that instant.
//!
//! Doing it here rather than in the request keeps every revoking route at
//! its round trips and needs the management API in one function only. The
//! user's connection pointers carry their session, so a logout reads one
//! partition; a user-wide end also reads the user and the sessions those
//! connections belong to (at once), to spare the ones opened after it.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::EventRecord;
use futures::future::join_all;
use model::{
    Table,
    clock::unix_now,
    connections::{Connections, UserConnection},
    domain::{ConnectionId, SessionId, UserId, UserStatus},
    keys::Entity,
    sessions::{Accounts, SessionItem},
    users::{UserItem, Users},
};
use platform::{AppError, realtime::Realtime};

/// A change that ended sessions.
#[derive(Debug, Clone)]
pub enum SessionsEnded {
    /// One session was revoked.
    One { user: UserId, session: SessionId },
    /// Every session of the user that is no longer live. What is live is
    /// judged against the user as stored now, not the record's image: a
    /// record delivered late (a retry) must not close the sockets of a
    /// session opened after the user was reactivated.
    OfUser(UserId),
}

fn image<T: serde::de::DeserializeOwned>(
    image: &serde_dynamo::Item,
    what: &'static str,
) -> Result<T, AppError> {
    serde_dynamo::from_item(image.clone()).map_err(|err| AppError::internal(what, err))
}

/// What a `MODIFY` of `entity` ended, if anything. Only transitions count,
/// so a revoked session written again, or a user edit that leaves the
/// sessions alone (a login's `lastLoginAt`), costs no reads.
pub fn ended_by(entity: Entity, record: &EventRecord) -> Result<Option<SessionsEnded>, AppError> {
    let change = &record.change;
    match entity {
        Entity::Session => {
            let new: SessionItem = image(&change.new_image, "reading a session record")?;
            let was_revoked = change
                .old_image
                .get("revoked")
                .is_some_and(|old| matches!(old, serde_dynamo::AttributeValue::Bool(true)));
            Ok((new.revoked && !was_revoked).then_some(SessionsEnded::One {
                user: new.user_id,
                session: new.sid,
            }))
        }
        Entity::User => {
            let new: UserItem = image(&change.new_image, "reading a user record")?;
            let old: UserItem = image(&change.old_image, "reading a user record")?;
            let cut_moved = new.sessions_valid_after > old.sessions_valid_after;
            let locked_out = old.status == UserStatus::Active && new.status != UserStatus::Active;
            Ok((cut_moved || locked_out).then_some(SessionsEnded::OfUser(new.id)))
        }
        _ => Ok(None),
    }
}

/// The connections to close among a user's, given the user as stored
/// (`None`: gone) and the sessions they belong to that still exist. A
/// connection opened before sessions were recorded cannot be told apart,
/// so a user-wide end closes it too.
pub fn doomed(
    user: Option<&UserItem>,
    connections: &[UserConnection],
    sessions: &HashMap<SessionId, SessionItem>,
    now_secs: i64,
) -> Vec<ConnectionId> {
    connections
        .iter()
        .filter(|connection| {
            let Some(user) = user.filter(|user| user.status == UserStatus::Active) else {
                return true;
            };
            connection
                .session_id
                .and_then(|sid| sessions.get(&sid))
                .is_none_or(|session| !session.is_live(user, now_secs))
        })
        .map(|connection| connection.connection_id.clone())
        .collect()
}

/// Closes the connections the change ended; how many.
pub async fn close(
    table: &Table,
    realtime: &Realtime,
    ended: &SessionsEnded,
) -> Result<usize, AppError> {
    let doomed = match ended {
        SessionsEnded::One { user, session } => table
            .user_connection_sessions(user)
            .await?
            .into_iter()
            .filter(|connection| connection.session_id == Some(*session))
            .map(|connection| connection.connection_id)
            .collect(),
        SessionsEnded::OfUser(user_id) => {
            let connections = table.user_connection_sessions(user_id).await?;
            if connections.is_empty() {
                return Ok(0);
            }
            let sids: Vec<SessionId> = connections.iter().filter_map(|c| c.session_id).collect();
            let (user, sessions) = tokio::join!(table.user(user_id), async {
                if sids.is_empty() {
                    Ok(Vec::new())
                } else {
                    table.sessions(user_id, &sids).await
                }
            });
            let sessions: HashMap<SessionId, SessionItem> = sessions?
                .into_iter()
                .map(|session| (session.sid, session))
                .collect();
            doomed(user?.as_ref(), &connections, &sessions, unix_now() as i64)
        }
    };
    let results = join_all(doomed.iter().map(|id| realtime.end(id))).await;
    // Every close is tried before a failure sends the record back: a
    // retry then finds only the connections still left.
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    use model::{
        clock::unix_now_ms,
        domain::{Email, Name},
        sessions::SessionOrigin,
    };
    use serde_dynamo::to_item;

    fn user() -> UserItem {
        UserItem::new(
            UserId::new(),
            Name::parse("name", "Alice".into()).unwrap(),
            Email::parse("email", "alice@example.com".into()).unwrap(),
            "hash".into(),
            "2025-01-01T00:00:00.000Z".into(),
        )
    }

    fn session(user: &UserItem) -> SessionItem {
        SessionItem::new(
            &user.id,
            SessionId::new(),
            "refresh".into(),
            unix_now() as i64 + 3600,
            SessionOrigin::default(),
        )
    }

    fn modify<T: serde::Serialize>(old: &T, new: &T) -> EventRecord {
        let mut record = EventRecord::default();
        record.event_name = "MODIFY".into();
        record.change.old_image = to_item(old).unwrap();
        record.change.new_image = to_item(new).unwrap();
        record
    }

    #[test]
    fn a_revocation_ends_its_session_once() {
        let user = user();
        let live = session(&user);
        let revoked = SessionItem {
            revoked: true,
            ..live.clone()
        };
        let ended = ended_by(Entity::Session, &modify(&live, &revoked)).unwrap();
        assert!(matches!(
            ended,
            Some(SessionsEnded::One { user: u, session: s }) if u == user.id && s == live.sid
        ));
        assert!(
            ended_by(Entity::Session, &modify(&revoked, &revoked))
                .unwrap()
                .is_none()
        );
        let rotated = SessionItem {
            refresh_hash: "another".into(),
            ..live.clone()
        };
        assert!(
            ended_by(Entity::Session, &modify(&live, &rotated))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_user_change_ends_sessions_only_when_it_cuts_them() {
        let before = user();
        let reset = UserItem {
            sessions_valid_after: unix_now_ms(),
            ..before.clone()
        };
        assert!(matches!(
            ended_by(Entity::User, &modify(&before, &reset)).unwrap(),
            Some(SessionsEnded::OfUser(id)) if id == before.id
        ));
        for status in [UserStatus::Suspended, UserStatus::Deleted] {
            let locked = UserItem {
                status,
                ..before.clone()
            };
            assert!(
                ended_by(Entity::User, &modify(&before, &locked))
                    .unwrap()
                    .is_some(),
                "{status:?}"
            );
        }
        let login = UserItem {
            last_login_at: Some("2025-01-02T00:00:00.000Z".into()),
            ..reset.clone()
        };
        assert!(
            ended_by(Entity::User, &modify(&reset, &login))
                .unwrap()
                .is_none()
        );
        let reactivated = UserItem {
            status: UserStatus::Active,
            ..UserItem {
                status: UserStatus::Suspended,
                ..before.clone()
            }
        };
        let suspended = UserItem {
            status: UserStatus::Suspended,
            ..before.clone()
        };
        assert!(
            ended_by(Entity::User, &modify(&suspended, &reactivated))
                .unwrap()
                .is_none()
        );
        assert!(
            ended_by(Entity::Post, &modify(&before, &reset))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_malformed_image_fails_so_it_is_retried() {
        let mut record = modify(&user(), &user());
        record.change.new_image = Default::default();
        assert!(ended_by(Entity::User, &record).is_err());
        assert!(ended_by(Entity::Session, &record).is_err());
    }

    fn connection(session: Option<&SessionItem>) -> UserConnection {
        UserConnection {
            connection_id: ConnectionId::parse(&format!("c{}=", SessionId::new())).unwrap(),
            session_id: session.map(|s| s.sid),
        }
    }

    #[test]
    fn a_user_wide_end_spares_the_sessions_opened_after_it() {
        let user = user();
        let old = SessionItem {
            created_at_ms: 1_000,
            ..session(&user)
        };
        let new = SessionItem {
            created_at_ms: 3_000,
            ..session(&user)
        };
        let revoked = SessionItem {
            revoked: true,
            ..session(&user)
        };
        let reset = UserItem {
            sessions_valid_after: 2_000,
            ..user.clone()
        };
        let connections = [
            connection(Some(&old)),
            connection(Some(&new)),
            connection(Some(&revoked)),
            connection(None),
            connection(Some(&session(&user))),
        ];
        let sessions: HashMap<SessionId, SessionItem> = [&old, &new, &revoked]
            .into_iter()
            .map(|s| (s.sid, s.clone()))
            .collect();
        let now = unix_now() as i64;
        let doomed_ids = doomed(Some(&reset), &connections, &sessions, now);
        // The old session, the revoked one, the unrecorded connection and
        // the one whose session is gone; not the session opened after.
        let expected: Vec<ConnectionId> = [0, 2, 3, 4]
            .into_iter()
            .map(|i| connections[i].connection_id.clone())
            .collect();
        assert_eq!(doomed_ids, expected);

        let suspended = UserItem {
            status: UserStatus::Suspended,
            ..reset
        };
        assert_eq!(
            doomed(Some(&suspended), &connections, &sessions, now).len(),
            connections.len()
        );
        assert_eq!(
            doomed(None, &connections, &sessions, now).len(),
            connections.len(),
            "a user who is gone keeps no socket"
        );
    }
}
