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
          # The suite needs a nats-server; it is provided to the check phase.
          nativeCheckInputs = [ pkgs.nats-server ];
          preCheck = "export NATS_SERVER=${pkgs.nats-server}/bin/nats-server";
          meta.mainProgram = "personctl";
        };

        # `nix develop`: Rust toolchain and nats-server for `tests/run.sh`.
        devShells.default = pkgs.mkShell {
          packages = [ pkgs.cargo pkgs.rustc pkgs.clippy pkgs.rustfmt pkgs.nats-server ];
          shellHook = "export NATS_SERVER=${pkgs.nats-server}/bin/nats-server";
        };
      });
}
