package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/fault"
)

// DirectorySync table (before the prefix):
//
//	DirectorySync   PK tenant id   RK service id   Data (JSON SyncState) + GroupId, At (absent when zero), Members
//
// One row per Teams-based service. The delta link (1–4 KB) lives only in Data: well
// within one 64 KiB string property. Every call is one request: PutSync is an
// AddEntity (empty ETag) or an UpdateEntity If-Match, never a read first.
const tableDirectorySync = "DirectorySync"

var _ directory.Store = (*Store)(nil)

func syncEntity(st directory.SyncState) (row, error) {
	st.ETag = ""
	data, err := json.Marshal(st)
	if err != nil {
		return row{}, fmt.Errorf("encode directory sync: %w", err)
	}
	return newRow("directory sync", "tenantId", st.TenantID, "serviceId", st.ServiceID, props{
		"Data": string(data), "GroupId": st.GroupID, "At": st.At,
		"Members": int32(max(min(st.Members, 1<<31-1), -1<<31)),
	})
}

// entityMissing reports whether err (from the SDK) is a 404 about the entity, not
// about its table (a table that is gone is an error the caller must see).
func entityMissing(err error) bool {
	var se *storageError
	return errors.As(classify(err), &se) && errors.Is(se, fault.ErrNotFound) && se.code != string(aztables.TableNotFound)
}

// GetSync implements directory.Store: one point read; 404 → fault.ErrNotFound. An id
// Table storage refuses as a key is a *fault.FieldError, and nothing is sent.
func (s *Store) GetSync(ctx context.Context, tenantID, serviceID string) (directory.SyncState, error) {
	if err := errors.Join(checkKey("tenantId", tenantID), checkKey("serviceId", serviceID)); err != nil {
		return directory.SyncState{}, fmt.Errorf("get directory sync: %w", err)
	}
	resp, err := s.client(tableDirectorySync).GetEntity(ctx, tenantID, serviceID, nil)
	if err != nil {
		return directory.SyncState{}, wrap("get directory sync", err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return directory.SyncState{}, fmt.Errorf("get directory sync: %w", err)
	}
	var st directory.SyncState
	if err := r.data("directory sync", &st); err != nil {
		return directory.SyncState{}, fmt.Errorf("get directory sync: %w", err)
	}
	st.TenantID, st.ServiceID, st.ETag = tenantID, serviceID, string(resp.ETag)
	return st, nil
}

// PutSync implements directory.Store in one request: with an empty st.ETag an
// AddEntity (409 → fault.ErrConflict), otherwise an UpdateEntity If-Match st.ETag
// (412, or the row gone, → fault.ErrPrecondition). It returns st with the new ETag.
// A key Table storage refuses or an At outside 1601–9999 is a *fault.FieldError, and
// nothing is sent.
func (s *Store) PutSync(ctx context.Context, st directory.SyncState) (directory.SyncState, error) {
	r, err := syncEntity(st)
	if err != nil {
		return directory.SyncState{}, fmt.Errorf("put directory sync: %w", err)
	}
	c := s.client(tableDirectorySync)
	var tag azcore.ETag
	if st.ETag == "" {
		resp, err := c.AddEntity(ctx, r.body, nil)
		if err != nil {
			return directory.SyncState{}, wrap("put directory sync", err)
		}
		tag = resp.ETag
	} else {
		e := azcore.ETag(st.ETag)
		resp, err := c.UpdateEntity(ctx, r.body, &aztables.UpdateEntityOptions{IfMatch: &e, UpdateMode: aztables.UpdateModeReplace})
		if entityMissing(err) {
			// The contract knows no "not found" for a write: the state the caller read
			// is no longer there, which is a lost race like any other.
			return directory.SyncState{}, fmt.Errorf("put directory sync: the state was deleted: %w", fault.ErrPrecondition)
		}
		if err != nil {
			return directory.SyncState{}, wrap("put directory sync", err)
		}
		tag = resp.ETag
	}
	st.ETag = string(tag)
	return st, nil
}

// DeleteSync implements directory.Store: one unconditional DeleteEntity; a missing
// row is no error. An id Table storage refuses as a key is a *fault.FieldError, and
// nothing is sent.
func (s *Store) DeleteSync(ctx context.Context, tenantID, serviceID string) error {
	if err := errors.Join(checkKey("tenantId", tenantID), checkKey("serviceId", serviceID)); err != nil {
		return fmt.Errorf("delete directory sync: %w", err)
	}
	_, err := s.client(tableDirectorySync).DeleteEntity(ctx, tenantID, serviceID, nil)
	if err != nil && !entityMissing(err) {
		return wrap("delete directory sync", err)
	}
	return nil
}
