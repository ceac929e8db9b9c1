// Package directory brings a tenant's people in from its Entra directory (SPEC §3, §8):
// a Teams-based service's agents are the members of its Team, kept in step by delta
// queries (a steady state costs a request or two, not a full read) with the Team's
// owners as the service's team owners; a skill-based service's agents are users picked
// from the directory, found with the tenant's Graph filter ANDed in; admin groups are
// checked against the directory.
//
// Graph is behind the Graph interface (shared/graph implements it). Every call names
// the credential it uses: the application permission where the tenant consented,
// else the tenant's presence accounts' delegated tokens (see Directory.creds).
//
// The package imports the standard library and other domain packages only.
package directory

import (
	"context"
	"errors"
	"time"

	"github.com/teamscc/teamscc/shared/presence"
)

// User is a directory user. Every field is a user identifier: never log one.
type User struct {
	ID          string `json:"id"` // Entra object id
	UPN         string `json:"upn"`
	DisplayName string `json:"displayName"`
}

// Group is a directory group (a Team is a Microsoft 365 group).
type Group struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// GroupDelta is what changed in a group's members and owners since a delta link
// (from the start: every member and owner is added). Ids are user object ids; members
// that are not users (devices, nested groups) are left out.
type GroupDelta struct {
	MembersAdded, MembersRemoved []string
	OwnersAdded, OwnersRemoved   []string
	// Link is the delta link to read the next changes from.
	Link string
	// Pages is how many Graph pages were read (measures).
	Pages int
}

// ErrResync: a delta link Graph no longer accepts; read from the start again.
var ErrResync = errors.New("directory: the delta link expired; a full sync is needed")

// Graph is what the directory asks of Microsoft Graph. Each method is one logical
// read (several pages for GroupDelta). Errors: fault.ErrNotFound for a group or user
// that does not exist; *presence.AuthError when the credential is refused (no
// consent, a wrong password) — the caller tries the next credential; fault.Permanent
// for other refusals (400, 403 on the object); the rest transient (429 and 5xx are
// retried inside with their Retry-After). Safe for concurrent use.
type Graph interface {
	// GroupDelta reads the changes of a group's members and owners since link (""
	// reads every member and owner); an expired link is ErrResync.
	GroupDelta(ctx context.Context, tenantID string, cred presence.Credential, groupID, link string) (GroupDelta, error)
	// Users reads users by object id (at most MaxIDsPerRead); ids that are not
	// users, or not there any more, are left out.
	Users(ctx context.Context, tenantID string, cred presence.Credential, ids []string) ([]User, error)
	// FindUser reads one user by UPN or object id, restricted by filter (the tenant's
	// Graph filter, an OData $filter fragment; "" none): fault.ErrNotFound when no
	// such user passes the filter.
	FindUser(ctx context.Context, tenantID string, cred presence.Credential, user, filter string) (User, error)
	// SearchUsers finds users whose display name, UPN or mail starts with query,
	// restricted by filter, at most top (1..MaxTop) a page; page is the token of the
	// previous answer ("" for the first page); next is "" on the last page.
	SearchUsers(ctx context.Context, tenantID string, cred presence.Credential, query, filter string, top int, page string) (users []User, next string, err error)
	// Group reads a group: fault.ErrNotFound when none.
	Group(ctx context.Context, tenantID string, cred presence.Credential, groupID string) (Group, error)
	// GroupMembers lists a group's direct members that are users, paged as SearchUsers.
	GroupMembers(ctx context.Context, tenantID string, cred presence.Credential, groupID string, top int, page string) (users []User, next string, err error)
}

// Limits of Graph reads.
const (
	MaxIDsPerRead = 1000 // directoryObjects/getByIds
	MaxTop        = 100  // a page of users or members
)

// SyncState is where a Teams-based service's membership sync stands.
type SyncState struct {
	TenantID  string    `json:"tenantId"`
	ServiceID string    `json:"serviceId"`
	GroupID   string    `json:"groupId"`        // the Team the link belongs to
	Link      string    `json:"link,omitempty"` // Graph's delta link; "" before the first sync
	At        time.Time `json:"at"`             // the last sync that finished
	Members   int       `json:"members"`        // members after it
	Error     string    `json:"error,omitempty"`
	ETag      string    `json:"-"`
}

// Store keeps sync states. Implementations are safe for concurrent use: GetSync
// returns fault.ErrNotFound for a service never synced; PutSync writes only if the
// stored state is still at s.ETag (empty ETag: insert, fault.ErrConflict if one
// exists), else fault.ErrPrecondition; DeleteSync removes one (a missing one is no
// error).
type Store interface {
	GetSync(ctx context.Context, tenantID, serviceID string) (SyncState, error)
	PutSync(ctx context.Context, s SyncState) (SyncState, error)
	DeleteSync(ctx context.Context, tenantID, serviceID string) error
}
