{
  description = "personctl: a content-addressed, signed event ledger for the Person domain";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs { inherit system; };
      in
      {
        # `nix build` (or `nix run . -- demo`): the personctl binary.
        packages.default = pkgs.rustPlatform.buildRustPackage {
          pname = "personctl";
          version = "0.1.0";
          src = ./.;
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [ "-p" "personctl" ];
          # The crates' own tests (unit, integration, doc) run in the sandbox. The system tests
          # (the root package) need a nats-server and npm packages, so they run outside it:
          # `nix develop -c tests/run.sh`.
          cargoTestFlags = [ "-p" "personctl-ledger" "-p" "personctl-domain" "-p" "personctl" ];
          meta.mainProgram = "personctl";
        };

        # `nix develop`: Rust toolchain, nats-server and Node.js (the CAR interop test) for
        # `tests/run.sh`.
        devShells.default = pkgs.mkShell {
          packages = [ pkgs.cargo pkgs.rustc pkgs.clippy pkgs.rustfmt pkgs.nats-server pkgs.nodejs ];
          shellHook = "export NATS_SERVER=${pkgs.nats-server}/bin/nats-server";
        };
      });
}
