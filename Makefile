# The two commands: `make run` starts the whole system on its embedded default (broker,
# SQLite, demo city, simulated traffic); `make test` installs what the tests need and runs
# every test with the race detector. .ci/run calls `make test`.
GO ?= go

.PHONY: run test build cross test-deps bench failover-drill

run:
	$(GO) run ./cmd/urbanbrain serve --demo

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o urbanbrain ./cmd/urbanbrain

test: test-deps cross
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) vet ./...
	URBANBRAIN_REQUIRE_TOOLS=$$(cat .ci/tools-ok 2>/dev/null || echo 0) $(GO) test -race -count=1 -timeout 60m ./...
	# One fuzz worker: on a 2-core CI machine parallel workers starve each other and the
	# coordinator reports a busy worker as hung. Budgets are counts of executions, about 15 s
	# of each here: a duration races Go 1.26's fuzz coordinator at its end (golang/go#75804,
	# "context deadline exceeded" and no failing input; fixed in Go 1.27).
	GO=$(GO) rules/testdata/fuzz-compile.sh 20000x
	# event.Marshal (goccy/go-json) against encoding/json's bytes, on fresh inputs each run.
	GO=$(GO) rules/testdata/fuzz-compile.sh 2000x FuzzMarshalMatchesEncodingJSON ./event/
	# ingest's payloads decoded by segmentio after the scan against encoding/json's values and reasons.
	GO=$(GO) rules/testdata/fuzz-compile.sh 40000x FuzzDecodeDataMatchesEncodingJSON ./ingest/

# The static binary for the 信创 servers too: Kunpeng and Phytium (arm64) and Loongson
# (loong64). CI fails when one of them stops building.
CROSS_ARCHS ?= amd64 arm64 loong64
cross:
	@for arch in $(CROSS_ARCHS); do \
	  echo "cross: linux/$$arch"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -o /dev/null ./cmd/urbanbrain || exit 1; \
	done

test-deps:
	@bash .ci/install-test-deps

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The failover drill with real processes: a broker and three instances, 30,000 events, one
# instance killed with SIGKILL and one restarted; then a for: 3m rule and a window count held
# across a kill; then the takeover time against the number of partitions.
failover-drill:
	$(GO) test -count=1 -v -run 'TestThreeInstancesFailOverWithoutDuplicates|TestHeldConditionCarriesAcrossFailover|TestWindowCountCarriesAcrossFailover|TestCrashMidStream' ./app/
	$(GO) test -count=1 -run '^$$' -bench Takeover -benchtime 1x -timeout 20m ./app/
