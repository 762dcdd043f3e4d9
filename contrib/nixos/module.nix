# NixOS module for Narwhal: `services.narwhal`. Import it in a configuration
# (imports = [ ./narwhal/contrib/nixos/module.nix ];), set `package` to a build of Narwhal
# whose bin/narwhal runs `narwhal` with Node 24, and `enable = true`. Every setting of
# `narwhal serve` is an option under `settings`, passed to the service as its NARWHAL_*
# variable (docs/operations.md); null leaves Narwhal's default. Secrets (a postgres://
# password, the metrics token) belong in `environmentFile`, not in `settings`, which end up in
# the world-readable Nix store.
{ config, lib, ... }:

let
  cfg = config.services.narwhal;
  inherit (lib) mkOption mkEnableOption mkIf types;

  # Each setting and the variable that carries it: one line per `narwhal serve` option.
  variables = {
    dataDir = "NARWHAL_DATA_DIR";
    storage = "NARWHAL_STORAGE";
    database = "NARWHAL_DATABASE";
    listen = "NARWHAL_LISTEN";
    processes = "NARWHAL_PROCESSES";
    logRequests = "NARWHAL_LOG_REQUESTS";
    logFormat = "NARWHAL_LOG_FORMAT";
    gcInterval = "NARWHAL_GC_INTERVAL";
    gcGrace = "NARWHAL_GC_GRACE";
    statsInterval = "NARWHAL_STATS_INTERVAL";
    maxNarSize = "NARWHAL_MAX_NAR_SIZE";
    recompressLevel = "NARWHAL_RECOMPRESS_LEVEL";
    recompressAfter = "NARWHAL_RECOMPRESS_AFTER";
    deltas = "NARWHAL_DELTAS";
    metricsToken = "NARWHAL_METRICS_TOKEN";
    metricsListen = "NARWHAL_METRICS_LISTEN";
    tlsCert = "NARWHAL_TLS_CERT";
    tlsKey = "NARWHAL_TLS_KEY";
    upstreamTimeout = "NARWHAL_UPSTREAM_TIMEOUT";
    upstreamNegativeTtl = "NARWHAL_UPSTREAM_NEGATIVE_TTL";
    netrcFile = "NARWHAL_NETRC_FILE";
  };

  setting = type: default: description: mkOption { inherit type default description; };
  text = types.nullOr types.str;

  asVariable = value:
    if builtins.isBool value then (if value then "1" else "0") else toString value;
  environment = builtins.listToAttrs (builtins.concatMap
    (name:
      let value = cfg.settings.${name}; in
      if value == null then [ ] else [{ name = variables.${name}; value = asVariable value; }])
    (builtins.attrNames variables));
in
{
  options.services.narwhal = {
    enable = mkEnableOption "Narwhal, a deduplicating Nix binary cache";

    package = mkOption {
      type = types.package;
      description = "The Narwhal package; its bin/narwhal is run as `narwhal serve`.";
    };

    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "A file of NARWHAL_*=VALUE lines read at start, for secrets (systemd EnvironmentFile).";
    };

    settings = {
      dataDir = setting types.str "/var/lib/narwhal" "Directory of the default stores (the service's state directory).";
      storage = setting text null "Chunk store: pack:DIR, a castr directory or s3://BUCKET/PREFIX?... (null: under dataDir).";
      database = setting text null "Metadata: sqlite:PATH or postgres://USER@HOST/DB (null: SQLite under dataDir); a password goes in environmentFile.";
      listen = setting types.str "127.0.0.1:5000" "HOST:PORT the server listens on.";
      processes = setting types.str "1" "Server processes sharing the port, or auto for one per core.";
      logRequests = setting types.bool false "Log one line per request.";
      logFormat = setting (types.enum [ "text" "json" ]) "json" "Log lines as text or as one JSON object each (the journal keeps either).";
      gcInterval = setting types.str "6h" "Time between GC runs (0: never).";
      gcGrace = setting types.str "1h" "How long unused NARs and chunks stay before GC deletes them.";
      statsInterval = setting types.str "10m" "Time between storage samples the web UI draws (0: never).";
      maxNarSize = setting text null "Largest NAR accepted, in bytes or with K, M, G, T (null: 64G).";
      recompressLevel = setting types.str "19" "zstd level idle recompression raises chunks to (0: never).";
      recompressAfter = setting types.str "60s" "Idle time without uploads before recompressing.";
      deltas = setting types.bool false "Also store older chunks as deltas of newer ones.";
      metricsToken = setting text null "Bearer token /metrics requires. It lands in the Nix store: prefer NARWHAL_METRICS_TOKEN in environmentFile.";
      metricsListen = setting text null "HOST:PORT of a separate listener for /metrics (then the main one answers 404 there).";
      tlsCert = setting text null "PEM certificate chain: serve over TLS, HTTP/2 to clients that offer it (with tlsKey). The service's dynamic user must be able to read it.";
      tlsKey = setting text null "PEM private key of tlsCert; keep it out of the Nix store (a path the dynamic user can read).";
      upstreamTimeout = setting types.str "10s" "How long a pull-through cache waits for an upstream before answering 404.";
      upstreamNegativeTtl = setting types.str "60s" "How long a path no upstream has is remembered as missing (0: not at all).";
      netrcFile = setting text null "netrc file with the credentials of private upstreams.";
    };
  };

  config = mkIf cfg.enable {
    systemd.services.narwhal = {
      description = "Narwhal Nix binary cache";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      inherit environment;
      serviceConfig = {
        ExecStart = "${cfg.package}/bin/narwhal serve";
        EnvironmentFile = if cfg.environmentFile == null then [ ] else [ cfg.environmentFile ];
        KillSignal = "SIGTERM";
        TimeoutStopSec = 90;
        Restart = "on-failure";
        RestartSec = "5s";
        LimitNOFILE = 65536;
        DynamicUser = true;
        StateDirectory = "narwhal";
        StateDirectoryMode = "0750";
        # Node's compile cache (docs/operations.md, "Memory settings"): about 20 MB less per thread.
        CacheDirectory = "narwhal";
        Environment = [ "NODE_COMPILE_CACHE=/var/cache/narwhal" ];
        WorkingDirectory = "/var/lib/narwhal";
        UMask = "0027";
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateUsers = true;
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" ];
        SystemCallErrorNumber = "EPERM";
        # No MemoryDenyWriteExecute: V8's JIT and WebAssembly need memory that is written, then run.
      };
    };
  };
}
