# rouse — common tasks. `make test` is what CI runs.
GO ?= go
PKGS := ./...
# The main module (the product) and the modules of its own that keep the
# browser driver and the Debian packager out of the product's go.mod. Every
# target that checks code runs in each of them.
MODULES := . tests/browser packaging

.PHONY: run test test-deps vet staticcheck build bench cross deb fuzz tidy

run:
	$(GO) run ./cmd/rouse run

build:
	$(GO) build -o bin/rouse ./cmd/rouse

test-deps:
	./scripts/test-deps.sh

# Every test, with the race detector, after installing what the tests need.
test: test-deps
	@set -e; for m in $(MODULES); do echo "== go test ($$m)"; \
		(cd $$m && $(GO) test -race -count=1 -timeout 20m $(PKGS)); done

vet:
	@set -e; for m in $(MODULES); do echo "== go vet ($$m)"; (cd $$m && \
		$(GO) vet $(PKGS) && GOOS=windows $(GO) vet $(PKGS) && GOOS=darwin $(GO) vet $(PKGS)); done

staticcheck:
	@set -e; for m in $(MODULES); do echo "== staticcheck ($$m)"; \
		(cd $$m && $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)); done

# Tidy every module after a dependency change (the other modules list the
# main module's dependencies too). nfpm's own tests import modules the
# proxy does not serve, so the packaging module is tidied with -e.
tidy:
	$(GO) mod tidy
	cd tests/browser && $(GO) mod tidy
	cd packaging && $(GO) mod tidy -e

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x $(PKGS)

# Each fuzz target for a number of executions (NAME:PKG:COUNT, sized to
# about 10-30 s here), on top of the corpus committed under each package's
# testdata/fuzz. The budget is a count, not a duration: with a duration Go
# 1.26's fuzzing coordinator can report its own deadline as a failure
# ("context deadline exceeded", go.dev/issue/75804) when a loaded machine
# delays a worker at the end. FUZZTIME given on the command line or in the
# environment applies to every target (e.g. FUZZTIME=10m for the long form).
# Each runs from its package's directory, so a target may sit in any module.
FUZZ_TARGETS := FuzzParse:./agent/config:4000x FuzzSecurityHeaders:./agent/api:40000x FuzzRequestBody:./agent/api:40000x FuzzSchedule:./scheduler:60000x FuzzParseMOO:./trackers/roon:25000x FuzzParseSOOD:./trackers/roon:25000x

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; rest=$${t#*:}; pkg=$${rest%%:*}; ft=$${rest#*:}; \
		if [ -n "$(FUZZTIME)" ]; then ft=$(FUZZTIME); fi; \
		echo "== fuzz $$name ($$pkg, $$ft)"; \
		(cd $$pkg && $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $$ft .); \
	done

# The Debian package in dist/ (VERSION=1.2.3 ARCH=arm64 to choose).
VERSION ?= 0.0.0~dev
ARCH ?= $(shell $(GO) env GOARCH)
deb:
	cd packaging && $(GO) run . -version $(VERSION) -arch $(ARCH) -out $(CURDIR)/dist/
