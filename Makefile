# The two commands a newcomer needs: `make run` (the app locally, no Azure account)
# and `make test` (every test, with Azurite for the Table storage suite).

AZURITE_VERSION := 3.35.0
AZURITE := .tools/node_modules/.bin/azurite-table
STATICCHECK_VERSION := v0.8.2
GO ?= go

.PHONY: run test bench lint ci package clean-tools azurite screenshots

run:
	$(GO) run ./handler -local

$(AZURITE):
	npm install --prefix .tools --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)

# Azurite $(AZURITE_VERSION) decodes each network chunk of a table request on its own, so a
# multi-byte character that straddles two chunks is stored as U+FFFD (Azure/Azurite#2670;
# real Table storage is not affected). The tests store large non-ASCII entities, so the
# installed copy decodes the whole body at once; the step fails if the line moved.
AZURITE_SERIALIZER := .tools/node_modules/azurite/dist/src/table/generated/utils/serializer.js
azurite: $(AZURITE)
	@grep -q 'Buffer.concat(segments)' $(AZURITE_SERIALIZER) || \
	  sed -i 's/const joined = segments.join("");/const joined = Buffer.concat(segments).toString("utf8");/' $(AZURITE_SERIALIZER)
	@grep -q 'Buffer.concat(segments)' $(AZURITE_SERIALIZER) || { echo "Azurite's request decoding could not be fixed: see the Makefile"; exit 1; }

test: azurite
	REQUIRE_AZURITE=1 $(GO) test -race -count=1 ./...

bench: azurite
	$(GO) test -run '^$$' -bench PresenceRefresh -benchmem -benchtime 5x ./shared/graph/
	REQUIRE_AZURITE=1 $(GO) test -run '^$$' -bench PresenceRefreshAzurite -benchtime 5x ./shared/tables/
	REQUIRE_AZURITE=1 $(GO) test -count=1 -v -run TestAPresencePollsTableStorageRequests ./shared/tables/ | grep 'table requests'
	$(GO) test -run '^$$' -bench StartToReady -benchtime 20x ./handler/
	$(GO) test -run '^$$' -bench Dispatch -benchmem ./shared/funchost/
	$(GO) test -run '^$$' -bench SavePresences -benchmem ./shared/tables/
	$(GO) test -run '^$$' -bench 'Benchmark(Decide|Explain)' -benchtime 300x -benchmem ./shared/routing/
	$(GO) test -run '^$$' -bench 'BenchmarkInteract' -cpu 1 -benchtime 2s ./handler/
	$(GO) test -run '^$$' -bench 'BenchmarkKicksOverHTTP' -cpu 1 -benchtime 50000x ./handler/
	REQUIRE_AZURITE=1 $(GO) test -run '^$$' -bench 'BenchmarkKickStormOverHTTP|BenchmarkOneKickOverHTTP' -benchtime 5x ./handler/
	REQUIRE_AZURITE=1 $(GO) test -count=1 -v -run 'TestRoutingRoundTripsPerDecision|TestKickRequestsDoNotGrowWithOtherAgents|TestConcurrentKicksOfServicesSharingAgents' ./shared/tables/ | grep -E 'table requests|^---'
	$(GO) test -run '^$$' -bench 'BenchmarkCallsOverHTTP' -benchtime 2000x ./handler/
	$(GO) test -run '^$$' -bench 'BenchmarkAnswerWithASlowStore' -benchtime 2x ./handler/
	REQUIRE_AZURITE=1 $(GO) test -count=1 -v -run TestACallsTableStorageRequests ./shared/tables/ | grep 'table requests'
	$(GO) test -run '^$$' -bench 'BenchmarkCallingVerify' -benchmem ./shared/entra/
	$(GO) test -run '^$$' -bench 'BenchmarkParseIncomingCall' -benchmem ./shared/teams/
	$(GO) test -run '^$$' -bench OutboundReserveAtTheCap -benchtime=2s ./shared/inmem/
	REQUIRE_AZURITE=1 $(GO) test -run '^$$' -bench OutboundReserveAtTheCapAzurite -benchtime=3s ./shared/tables/
	$(GO) test -run '^$$' -bench . -benchmem ./shared/userstate/
	$(GO) test -run '^$$' -bench BenchmarkTeamSync -benchtime 5x ./shared/directory/
	$(GO) test -run '^$$' -bench BenchmarkGroupDelta5000 -benchtime 5x ./shared/graph/
	REQUIRE_AZURITE=1 $(GO) test -count=1 -v -run TestATeamSyncsTableStorageRequests ./shared/tables/ | grep 'table requests'
	REQUIRE_AZURITE=1 $(GO) test -count=1 -v -run TestARetentionRunsTableStorageRequests ./shared/tables/ | grep 'table requests'
	REQUIRE_AZURITE=1 $(GO) test -count=1 -v -run TestTheLiveQueuesTableRequestsFollowTheService ./handler/ | grep 'table requests'

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

ci: lint test

package:
	sh scripts/package.sh dist

clean-tools:
	rm -rf .tools

# PNGs of the admin portal's main pages, from the local runner with simulated calls,
# taken in headless Chromium (apt-get install -y chromium).
screenshots:
	PORTAL_SCREENSHOTS=$(CURDIR)/docs/screenshots REQUIRE_BROWSER=1 $(GO) test -count=1 -run '^TestPortalScreenshots$$' ./handler/
