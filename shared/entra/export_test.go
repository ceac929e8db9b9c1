package entra

// WaitForCallingFetch waits until v has no fetch of metadata and keys under way, so
// a test can tell a background refresh from the next fetch.
func WaitForCallingFetch(v *CallingValidator) {
	v.keys.mu.Lock()
	f := v.keys.inflight
	v.keys.mu.Unlock()
	if f != nil {
		<-f.done
	}
}
