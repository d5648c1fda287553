//! Topic ACL sync rules, as MM2's `MirrorSourceConnector` applies them: only literal ACLs on
//! named topics that the flow replicates; ALLOW WRITE is never copied (only the replicator
//! writes remote topics); ALLOW ALL becomes ALLOW READ; ACLs are only ever added. Pure.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclOperation {
    Unknown,
    Any,
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclPermission {
    Unknown,
    Any,
    Deny,
    Allow,
}

/// A literal ACL on one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicAcl {
    pub topic: String,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// The ACL to create on the target for a source ACL, or `None` when it is not copied.
pub fn remote_acl(source: &TopicAcl, remote_topic: &str) -> Option<TopicAcl> {
    if source.topic == "*" {
        return None;
    }
    let (operation, permission) = match (source.operation, source.permission) {
        (AclOperation::Write, AclPermission::Allow) => return None,
        (AclOperation::All, AclPermission::Allow) => (AclOperation::Read, AclPermission::Allow),
        other => other,
    };
    Some(TopicAcl {
        topic: remote_topic.to_string(),
        principal: source.principal.clone(),
        host: source.host.clone(),
        operation,
        permission,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(operation: AclOperation, permission: AclPermission) -> TopicAcl {
        TopicAcl {
            topic: "orders".into(),
            principal: "User:alice".into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    #[test]
    fn allow_write_is_dropped() {
        assert_eq!(
            remote_acl(
                &acl(AclOperation::Write, AclPermission::Allow),
                "europe.orders"
            ),
            None
        );
    }

    #[test]
    fn allow_all_becomes_allow_read_on_the_remote_topic() {
        let remote = remote_acl(
            &acl(AclOperation::All, AclPermission::Allow),
            "europe.orders",
        )
        .unwrap();
        assert_eq!(
            remote,
            TopicAcl {
                topic: "europe.orders".into(),
                ..acl(AclOperation::Read, AclPermission::Allow)
            }
        );
    }

    #[test]
    fn other_acls_are_copied_as_they_are_including_denials() {
        for (op, perm) in [
            (AclOperation::Read, AclPermission::Allow),
            (AclOperation::Describe, AclPermission::Allow),
            (AclOperation::Write, AclPermission::Deny),
            (AclOperation::All, AclPermission::Deny),
        ] {
            let remote = remote_acl(&acl(op, perm), "orders").unwrap();
            assert_eq!((remote.operation, remote.permission), (op, perm));
        }
    }

    #[test]
    fn the_wildcard_topic_is_not_copied() {
        let wildcard = TopicAcl {
            topic: "*".into(),
            ..acl(AclOperation::Read, AclPermission::Allow)
        };
        assert_eq!(remote_acl(&wildcard, "*"), None);
    }
}
