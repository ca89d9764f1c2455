# rouse — common tasks. `make test` is what CI runs.
GO ?= go
PKGS := ./...

.PHONY: run test test-deps vet staticcheck build bench cross

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
