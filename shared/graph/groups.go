package graph

import (
	"context"
	"errors"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/teamscc/teamscc/shared/presence"
)

// MemberOf answers which of groupIDs the user is a transitive member of, in the user's
// own tenant, with this app's application credential (POST
// /users/{id}/checkMemberGroups; needs GroupMember.Read.All). The admin API asks it
// when a token says the caller is in too many groups to list them ("groups
// overage"). At most 20 groups per call, Graph's limit.
func (r *Reader) MemberOf(ctx context.Context, tenantID, objectID string, groupIDs []string) ([]string, error) {
	if len(groupIDs) == 0 {
		return nil, nil
	}
	if len(groupIDs) > 20 || objectID == "" {
		return nil, errors.New("graph: checkMemberGroups takes a user and 1..20 groups")
	}
	cred := presence.Credential{Kind: presence.CredApplication}
	auth, err := r.auth(tenantID, cred)
	if err != nil {
		return nil, err
	}
	body := users.NewItemCheckMemberGroupsPostRequestBody()
	body.SetGroupIds(groupIDs)
	var answer struct {
		Value []string `json:"value"`
	}
	cfg := &users.ItemCheckMemberGroupsRequestBuilderPostRequestConfiguration{
		Options: []abs.RequestOption{decodeInto(&answer)},
	}
	if _, err := r.client.Users().ByUserId(objectID).CheckMemberGroups().
		PostAsCheckMemberGroupsPostResponse(withAuth(ctx, auth), body, cfg); err != nil {
		return nil, r.classify(ctx, "checkMemberGroups", err, r.secrets(cred, objectID)...)
	}
	return answer.Value, nil
}
