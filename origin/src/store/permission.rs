//! Permissions, the built-in roles as sets of them, and the scopes a role
//! is granted at. Pure: no I/O.
//!
//! A role is a named [`Permissions`] set: the four built-in roles
//! ([`Role`]) or an organization's custom roles. It is granted at a
//! [`Scope`]: the whole organization, one project, or one environment. A
//! grant at a scope covers everything inside it ([`Scope::covers`]).
//!
//! ```
//! use bunting_origin::store::{Permission, Permissions, Role, Scope};
//! let editor = Role::Editor.permissions();
//! assert!(editor.has(Permission::FlagsWrite) && !editor.has(Permission::SdkKeysWrite));
//! let staging = Scope::Environment { org: 1, project: 2, environment: 3 };
//! let production = Scope::Environment { org: 1, project: 2, environment: 4 };
//! assert!(Scope::Project { org: 1, project: 2 }.covers(&production));
//! assert!(!staging.covers(&production));
//! assert_eq!(Permissions::parse(&["read", "killswitch"]).unwrap().names(), ["read", "killswitch"]);
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One thing a caller may do. The `read` permission is needed for every
/// read; each write names its own.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum Permission {
    /// Read everything in scope, the audit log included.
    #[serde(rename = "read")]
    Read,
    /// Create, change and delete flags, their per-environment
    /// configurations, segments, layers, metrics, experiments and guarded
    /// rollouts.
    #[serde(rename = "flags.write")]
    FlagsWrite,
    /// Turn a flag off or on in an environment (the kill switch), and roll
    /// flags back from external alerts.
    #[serde(rename = "killswitch")]
    Killswitch,
    /// Create, rename and delete environments; set their change policy.
    #[serde(rename = "environments.write")]
    EnvironmentsWrite,
    /// Create, rotate and revoke SDK keys.
    #[serde(rename = "sdkkeys.write")]
    SdkKeysWrite,
    /// Create, rename and delete projects.
    #[serde(rename = "projects.write")]
    ProjectsWrite,
    /// Rename and delete the organization.
    #[serde(rename = "org.write")]
    OrgWrite,
    /// Manage members, teams, custom roles and role bindings.
    #[serde(rename = "members.manage")]
    MembersManage,
    /// Create, list and revoke service tokens (and other people's personal
    /// tokens).
    #[serde(rename = "tokens.manage")]
    TokensManage,
    /// Export the audit log.
    #[serde(rename = "audit.export")]
    AuditExport,
    /// Manage webhook subscriptions.
    #[serde(rename = "webhooks.manage")]
    WebhooksManage,
    /// Approve or reject other people's change requests (where the
    /// environment's policy lets the caller's roles or teams approve).
    #[serde(rename = "changes.approve")]
    ChangesApprove,
    /// Break glass: apply a change in a protected environment without the
    /// approvals its policy asks for (a reason is required and audited).
    #[serde(rename = "changes.bypass")]
    ChangesBypass,
}

impl Permission {
    /// Every permission, in order.
    pub const ALL: [Permission; 13] = [
        Permission::Read,
        Permission::FlagsWrite,
        Permission::Killswitch,
        Permission::EnvironmentsWrite,
        Permission::SdkKeysWrite,
        Permission::ProjectsWrite,
        Permission::OrgWrite,
        Permission::MembersManage,
        Permission::TokensManage,
        Permission::AuditExport,
        Permission::WebhooksManage,
        Permission::ChangesApprove,
        Permission::ChangesBypass,
    ];

    /// Its name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::FlagsWrite => "flags.write",
            Permission::Killswitch => "killswitch",
            Permission::EnvironmentsWrite => "environments.write",
            Permission::SdkKeysWrite => "sdkkeys.write",
            Permission::ProjectsWrite => "projects.write",
            Permission::OrgWrite => "org.write",
            Permission::MembersManage => "members.manage",
            Permission::TokensManage => "tokens.manage",
            Permission::AuditExport => "audit.export",
            Permission::WebhooksManage => "webhooks.manage",
            Permission::ChangesApprove => "changes.approve",
            Permission::ChangesBypass => "changes.bypass",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Permission, String> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown permission {s:?} (one of {})", names.join(", "))
            })
    }
}

/// A set of [`Permission`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Permissions(u32);

impl Permissions {
    /// No permission.
    pub const NONE: Permissions = Permissions(0);

    /// Every permission.
    pub fn all() -> Permissions {
        Permissions::of(&Permission::ALL)
    }

    /// The set of `list`.
    pub fn of(list: &[Permission]) -> Permissions {
        Permissions(list.iter().fold(0, |acc, p| acc | p.bit()))
    }

    /// Parses permission names; the error names every unknown one.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Permissions, Vec<String>> {
        let mut set = Permissions::NONE;
        let mut errors = Vec::new();
        for n in names {
            match n.as_ref().parse::<Permission>() {
                Ok(p) => set = set.with(p),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// This set and `p`.
    pub fn with(self, p: Permission) -> Permissions {
        Permissions(self.0 | p.bit())
    }

    /// Whether `p` is in the set.
    pub fn has(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// Whether every permission of `other` is in this set.
    pub fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// The permissions in both sets.
    pub fn intersect(self, other: Permissions) -> Permissions {
        Permissions(self.0 & other.0)
    }

    /// The permissions in the set, in [`Permission::ALL`]'s order.
    pub fn list(self) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.has(*p))
            .collect()
    }

    /// Their names.
    pub fn names(self) -> Vec<&'static str> {
        self.list().into_iter().map(Permission::as_str).collect()
    }
}

/// The built-in roles. Each includes the ones before it.
///
/// | role | adds |
/// |---|---|
/// | `viewer` | `read` |
/// | `editor` | `flags.write`, `killswitch`, `changes.approve` |
/// | `publisher` | `environments.write`, `sdkkeys.write` |
/// | `admin` | everything else: `projects.write`, `org.write`, `members.manage`, `tokens.manage`, `audit.export`, `webhooks.manage`, `changes.bypass` |
///
/// ```
/// use bunting_origin::store::Role;
/// assert!(Role::Admin > Role::Publisher && Role::Editor > Role::Viewer);
/// assert_eq!("publisher".parse::<Role>().unwrap(), Role::Publisher);
/// assert!(Role::Publisher.permissions().contains(Role::Editor.permissions()));
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Changes flag content.
    Editor,
    /// Manages environments and SDK keys.
    Publisher,
    /// Manages the organization.
    Admin,
}

impl Role {
    /// The built-in roles, lowest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Editor, Role::Publisher, Role::Admin];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Publisher => "publisher",
            Role::Admin => "admin",
        }
    }

    /// What the role may do.
    pub fn permissions(self) -> Permissions {
        use Permission as P;
        let viewer = Permissions::of(&[P::Read]);
        let editor = viewer
            .with(P::FlagsWrite)
            .with(P::Killswitch)
            .with(P::ChangesApprove);
        let publisher = editor.with(P::EnvironmentsWrite).with(P::SdkKeysWrite);
        match self {
            Role::Viewer => viewer,
            Role::Editor => editor,
            Role::Publisher => publisher,
            Role::Admin => Permissions::all(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?} (viewer, editor, publisher or admin)"))
    }
}

/// Where a role is granted, or where an action happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// An organization, everything in it.
    Org {
        /// Its id.
        org: i64,
    },
    /// A project, its environments included.
    Project {
        /// Its organization's id.
        org: i64,
        /// Its id.
        project: i64,
    },
    /// One environment of a project.
    Environment {
        /// Its organization's id.
        org: i64,
        /// Its project's id.
        project: i64,
        /// Its id.
        environment: i64,
    },
}

impl Scope {
    /// The organization of the scope.
    pub fn org(&self) -> i64 {
        match *self {
            Scope::Org { org } | Scope::Project { org, .. } | Scope::Environment { org, .. } => org,
        }
    }

    fn project(&self) -> Option<i64> {
        match *self {
            Scope::Org { .. } => None,
            Scope::Project { project, .. } | Scope::Environment { project, .. } => Some(project),
        }
    }

    fn environment(&self) -> Option<i64> {
        match *self {
            Scope::Environment { environment, .. } => Some(environment),
            _ => None,
        }
    }

    /// Whether this scope contains `other` (or is it).
    pub fn covers(&self, other: &Scope) -> bool {
        self.org() == other.org()
            && (self.project().is_none() || self.project() == other.project())
            && (self.environment().is_none() || self.environment() == other.environment())
    }
}

/// A set of permissions granted at a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Where.
    pub scope: Scope,
    /// What.
    pub permissions: Permissions,
}

/// What a caller may do: every grant it holds, through any path.
///
/// ```
/// use bunting_origin::store::{Grant, Grants, Permission, Role, Scope};
/// let staging = Scope::Environment { org: 1, project: 2, environment: 3 };
/// let production = Scope::Environment { org: 1, project: 2, environment: 4 };
/// let grants = Grants::of(vec![
///     Grant { scope: Scope::Org { org: 1 }, permissions: Role::Viewer.permissions() },
///     Grant { scope: staging, permissions: Role::Editor.permissions() },
/// ]);
/// assert!(grants.allows(Permission::FlagsWrite, &staging));
/// assert!(!grants.allows(Permission::FlagsWrite, &production));
/// assert!(grants.allows(Permission::Read, &production));
/// assert!(grants.in_org(1) && !grants.in_org(9));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Held in every organization (the instance's administrator).
    everywhere: Permissions,
    grants: Vec<Grant>,
}

impl Grants {
    /// Everything everywhere (the instance's administrator).
    pub fn everything() -> Grants {
        Grants {
            everywhere: Permissions::all(),
            grants: Vec::new(),
        }
    }

    /// Exactly `grants`.
    pub fn of(grants: Vec<Grant>) -> Grants {
        Grants {
            everywhere: Permissions::NONE,
            grants,
        }
    }

    /// What is held in every organization (all of it for the instance's
    /// administrator, else nothing).
    pub fn everywhere(&self) -> Permissions {
        self.everywhere
    }

    /// The grants in organizations.
    pub fn list(&self) -> &[Grant] {
        &self.grants
    }

    /// Whether the caller holds anything in organization `org`.
    pub fn in_org(&self, org: i64) -> bool {
        self.everywhere != Permissions::NONE
            || self
                .grants
                .iter()
                .any(|g| g.scope.org() == org && g.permissions != Permissions::NONE)
    }

    /// Whether `p` is granted at a scope covering `at`. `read` is also
    /// granted on the containers of what the caller may read: an
    /// environment-scoped viewer reads its project and organization (not
    /// the project's other environments).
    pub fn allows(&self, p: Permission, at: &Scope) -> bool {
        self.everywhere.has(p)
            || self.grants.iter().any(|g| {
                g.permissions.has(p)
                    && (g.scope.covers(at) || (p == Permission::Read && at.covers(&g.scope)))
            })
    }

    /// Whether every permission of `wanted` is granted at a scope covering
    /// `at` (a caller grants only what it holds itself).
    pub fn allows_all(&self, wanted: Permissions, at: &Scope) -> bool {
        wanted.list().into_iter().all(|p| {
            self.everywhere.has(p)
                || self
                    .grants
                    .iter()
                    .any(|g| g.permissions.has(p) && g.scope.covers(at))
        })
    }

    /// These grants limited to organization `org`: what is held everywhere
    /// becomes a grant on `org`, other organizations' grants go (a
    /// personal token acts only in its organization).
    pub fn within_org(self, org: i64) -> Grants {
        let mut grants: Vec<Grant> = self
            .grants
            .into_iter()
            .filter(|g| g.scope.org() == org)
            .collect();
        if self.everywhere != Permissions::NONE {
            grants.push(Grant {
                scope: Scope::Org { org },
                permissions: self.everywhere,
            });
        }
        Grants::of(grants)
    }

    /// These grants capped by `cap`: each keeps only the permissions in
    /// `cap` (a personal token never exceeds its user, nor its own role).
    pub fn capped(self, cap: Permissions) -> Grants {
        Grants {
            everywhere: self.everywhere.intersect(cap),
            grants: self
                .grants
                .into_iter()
                .map(|g| Grant {
                    scope: g.scope,
                    permissions: g.permissions.intersect(cap),
                })
                .collect(),
        }
    }
}
