# rouse — common tasks. `make test` is what CI runs.
GO ?= go
PKGS := ./...

.PHONY: run test test-deps vet staticcheck build bench cross deb fuzz

run:
	$(GO) run ./cmd/rouse run

build:
	$(GO) build -o bin/rouse ./cmd/rouse

test-deps:
	./scripts/test-deps.sh

# Every test, with the race detector, after installing what the tests need.
test: test-deps
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

vet:
	$(GO) vet $(PKGS)
	GOOS=windows $(GO) vet $(PKGS)
	GOOS=darwin $(GO) vet $(PKGS)

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x $(PKGS)

# Each fuzz target for FUZZTIME (30s in CI; e.g. FUZZTIME=10m for the long
# form), on top of the corpus committed under each package's testdata/fuzz.
FUZZTIME ?= 30s
FUZZ_TARGETS := FuzzParse:./agent/config FuzzSecurityHeaders:./agent/api FuzzRequestBody:./agent/api FuzzSchedule:./scheduler FuzzParseMOO:./trackers/roon FuzzParseSOOD:./trackers/roon

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; pkg=$${t#*:}; \
		echo "== fuzz $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# The Debian package in dist/ (VERSION=1.2.3 ARCH=arm64 to choose).
VERSION ?= 0.0.0~dev
ARCH ?= $(shell $(GO) env GOARCH)
deb:
	$(GO) run ./packaging -version $(VERSION) -arch $(ARCH) -out dist/
