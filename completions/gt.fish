# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gt_global_optspecs
    string join \n town= json q/quiet v/verbose h/help V/version
end

function __fish_gt_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gt_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gt_using_subcommand
    set -l cmd (__fish_gt_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gt -n "__fish_gt_needs_command" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_needs_command" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_needs_command" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_needs_command" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_needs_command" -s V -l version -d 'Print version'
complete -c gt -n "__fish_gt_needs_command" -f -a "init" -d 'Create a town: a directory with gt.toml (town-wide defaults) and .gt/town.db (state)'
complete -c gt -n "__fish_gt_needs_command" -f -a "rig" -d 'Manage rigs: the git repositories (projects) this town runs agents on'
complete -c gt -n "__fish_gt_needs_command" -f -a "secret" -d 'Manage the town\'s secrets: API keys and tokens its agents need'
complete -c gt -n "__fish_gt_needs_command" -f -a "image" -d 'Build agent images locally: no container registry is used, nothing is pulled'
complete -c gt -n "__fish_gt_needs_command" -f -a "costs" -d 'Sum the tokens and cost agents reported, per rig (or per bead)'
complete -c gt -n "__fish_gt_needs_command" -f -a "diff" -d 'Show what a bead (or merge request) changed against its rig\'s default branch'
complete -c gt -n "__fish_gt_needs_command" -f -a "bead" -d 'Manage beads: the work items you give agents (`gt sling`)'
complete -c gt -n "__fish_gt_needs_command" -f -a "sling" -d 'Assign beads to polecats: for each, a worktree on its own branch and a container'
complete -c gt -n "__fish_gt_needs_command" -f -a "polecat" -d 'Manage polecats: the worker agents of each rig'
complete -c gt -n "__fish_gt_needs_command" -f -a "peek" -d 'Show the recent output of a polecat\'s container'
complete -c gt -n "__fish_gt_needs_command" -f -a "convoy" -d 'Convoys: batches of beads (across rigs) tracked together with a completion policy'
complete -c gt -n "__fish_gt_needs_command" -f -a "mail" -d 'Durable mail between agents, the mayor (your inbox) and you'
complete -c gt -n "__fish_gt_needs_command" -f -a "mq" -d 'The merge queue: finished work, reviewed and landed on each rig\'s default branch'
complete -c gt -n "__fish_gt_needs_command" -f -a "patrol" -d 'One reconciliation pass: recover dead agents, hand over and land finished work'
complete -c gt -n "__fish_gt_needs_command" -f -a "serve" -d 'Serve agents that share no files with this machine (clone workspace), over HTTPS'
complete -c gt -n "__fish_gt_needs_command" -f -a "drain" -d 'Stop the crew gently: no new dispatches; agents are asked to stop, then stopped'
complete -c gt -n "__fish_gt_needs_command" -f -a "stop" -d 'Stop the crew now: like `gt drain --timeout 0s`, no wait'
complete -c gt -n "__fish_gt_needs_command" -f -a "resume" -d 'Dispatch again: close the circuit breaker and lift drains (`gt drain`, `gt stop`)'
complete -c gt -n "__fish_gt_needs_command" -f -a "status" -d 'The town at a glance: engine, patrol, unread mail, and each rig\'s beads and agents'
complete -c gt -n "__fish_gt_needs_command" -f -a "top" -d 'A live full-screen view of the town: problems first, then every working polecat'
complete -c gt -n "__fish_gt_needs_command" -f -a "log" -d 'The event log: every change to the town, who made it, oldest first'
complete -c gt -n "__fish_gt_needs_command" -f -a "doctor" -d 'Check the town\'s invariants; exits 1 naming every breach'
complete -c gt -n "__fish_gt_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish or powershell)'
complete -c gt -n "__fish_gt_needs_command" -f -a "prime" -d 'Agent mode: print your assignment, earlier attempts and unread mail (the resume context)'
complete -c gt -n "__fish_gt_needs_command" -f -a "hook" -d 'Agent mode: print the bead you work on (your hook), its branch and generation'
complete -c gt -n "__fish_gt_needs_command" -f -a "checkpoint" -d 'Agent mode: record progress (the note and your branch head) for a later attempt'
complete -c gt -n "__fish_gt_needs_command" -f -a "done" -d 'Agent mode: hand your work over'
complete -c gt -n "__fish_gt_needs_command" -f -a "escalate" -d 'Agent mode: ask the mayor (a human) for help'
complete -c gt -n "__fish_gt_needs_command" -f -a "agent" -d 'The in-container side of gt (used by agent containers, not by people)'
complete -c gt -n "__fish_gt_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand init" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand init" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand init" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand init" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -f -a "add" -d 'Add a rig: clone SOURCE into rigs/NAME/repo and record its agent settings'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -f -a "list" -d 'List the rigs of this town'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -f -a "show" -d 'Show a rig\'s source, remote, default branch and agent settings'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -f -a "set" -d 'Change a rig\'s agent settings or remote, from the next dispatch on'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -f -a "remove" -d 'Remove a rig from the town; refused while any of its agents lives'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -f -a "prune" -d 'Delete the local branches of done beads whose work is safe elsewhere'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show set remove prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l agent -d 'The coding agent: claude or codex fill image, command, env and the secret the agent needs (except those given too); custom (the default) is your own --image and --command' -r -f -a "claude\t''
codex\t''
custom\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l image -d 'The agent container image (built locally; never pulled)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l command -d 'The agent command, run inside the container by `gt agent run --` (`sh -c`). Never put a key in it: it is stored and visible in `docker inspect`; use --secret' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l env -d 'An environment variable of the agent command, KEY=VALUE (repeatable). Not for secrets: values are stored, shown by `gt rig show` and visible in `docker inspect`. On `rig set` the given list replaces the rig\'s whole environment' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l secret -d 'A town secret (`gt secret set NAME`) the agents get (repeatable): mounted read-only at /gt-secrets/NAME and set as the environment variable NAME of the agent command only. On `rig set` the given list replaces the rig\'s secrets' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l placement -d 'On a swarm: a placement constraint for the rig\'s agents and gates, as Swarm reads it (repeatable): node.labels.gpu==true, node.hostname!=laptop, node.role==worker. On `rig set` the given list replaces the rig\'s; ignored by the docker runtime' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l memory -d 'Container memory limit, e.g. 512m or 2g (at least 6m, Docker\'s minimum)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l cpus -d 'Container CPU limit, e.g. 2 or 0.5 (0.01 to 1024)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l remote -d 'Where finished branches are pushed (a URL or a path to a bare repository; not empty)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l max-polecats -d 'How many agents of this rig may run at once; more beads wait queued' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l pids -d 'Container process limit (default 512)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l network -d 'The agents\' Docker network: default (the engine\'s), none (offline agents), host, or the name of a network you created. On a swarm (`[runtime] kind = "swarm"`): default, host or a swarm network; Swarm has no none' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l merge -d 'How finished work lands on the default branch: review (a person approves each merge request with `gt mq approve`; the default of a new rig), auto (lands without approval once the gate passes), off (only recorded, as before)' -r -f -a "review\t''
auto\t''
off\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l test-command -d 'The gate: a shell command run (`sh -c`) on every candidate (target + the change) in a container with the agents\' image, limits and isolation; exit 0 lets it land. An empty value removes the gate' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l merge-style -d 'How a change lands: merge (a merge commit; default), squash (one commit), rebase (its commits replayed on the target)' -r -f -a "merge\t''
squash\t''
rebase\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l gate-secrets -d 'Whether the gate gets the rig\'s secrets (off by default: a gate runs the agent\'s code)' -r -f -a "on\t''
off\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l digest -d 'Fold this rig\'s done notices into one digest mail to the mayor per patrol pass (escalations are never folded)' -r -f -a "on\t''
off\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l land-into-source -d 'For a rig whose SOURCE is a local repository and that has no --remote: whether landed work is fast-forwarded into that repository\'s default branch (on, the default; only when git allows it: the branch not checked out, or checked out with a clean work tree, which is then updated). off: it stays in the town\'s clone (rigs/NAME/repo)' -r -f -a "on\t''
off\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l no-env -d 'Clear the rig\'s environment (a preset\'s included)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l no-placement -d 'Remove the rig\'s placement constraints (its agents may run on any node)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l no-secrets -d 'Attach no secrets (drops a preset\'s secret too)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from list" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from list" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from show" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from show" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l agent -d 'The coding agent: claude or codex fill image, command, env and the secret the agent needs (except those given too); custom (the default) is your own --image and --command' -r -f -a "claude\t''
codex\t''
custom\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l image -d 'The agent container image (built locally; never pulled)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l command -d 'The agent command, run inside the container by `gt agent run --` (`sh -c`). Never put a key in it: it is stored and visible in `docker inspect`; use --secret' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l env -d 'An environment variable of the agent command, KEY=VALUE (repeatable). Not for secrets: values are stored, shown by `gt rig show` and visible in `docker inspect`. On `rig set` the given list replaces the rig\'s whole environment' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l secret -d 'A town secret (`gt secret set NAME`) the agents get (repeatable): mounted read-only at /gt-secrets/NAME and set as the environment variable NAME of the agent command only. On `rig set` the given list replaces the rig\'s secrets' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l placement -d 'On a swarm: a placement constraint for the rig\'s agents and gates, as Swarm reads it (repeatable): node.labels.gpu==true, node.hostname!=laptop, node.role==worker. On `rig set` the given list replaces the rig\'s; ignored by the docker runtime' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l memory -d 'Container memory limit, e.g. 512m or 2g (at least 6m, Docker\'s minimum)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l cpus -d 'Container CPU limit, e.g. 2 or 0.5 (0.01 to 1024)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l remote -d 'Where finished branches are pushed (a URL or a path to a bare repository; not empty)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l max-polecats -d 'How many agents of this rig may run at once; more beads wait queued' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l pids -d 'Container process limit (default 512)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l network -d 'The agents\' Docker network: default (the engine\'s), none (offline agents), host, or the name of a network you created. On a swarm (`[runtime] kind = "swarm"`): default, host or a swarm network; Swarm has no none' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l merge -d 'How finished work lands on the default branch: review (a person approves each merge request with `gt mq approve`; the default of a new rig), auto (lands without approval once the gate passes), off (only recorded, as before)' -r -f -a "review\t''
auto\t''
off\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l test-command -d 'The gate: a shell command run (`sh -c`) on every candidate (target + the change) in a container with the agents\' image, limits and isolation; exit 0 lets it land. An empty value removes the gate' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l merge-style -d 'How a change lands: merge (a merge commit; default), squash (one commit), rebase (its commits replayed on the target)' -r -f -a "merge\t''
squash\t''
rebase\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l gate-secrets -d 'Whether the gate gets the rig\'s secrets (off by default: a gate runs the agent\'s code)' -r -f -a "on\t''
off\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l digest -d 'Fold this rig\'s done notices into one digest mail to the mayor per patrol pass (escalations are never folded)' -r -f -a "on\t''
off\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l land-into-source -d 'For a rig whose SOURCE is a local repository and that has no --remote: whether landed work is fast-forwarded into that repository\'s default branch (on, the default; only when git allows it: the branch not checked out, or checked out with a clean work tree, which is then updated). off: it stays in the town\'s clone (rigs/NAME/repo)' -r -f -a "on\t''
off\t''"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l if-version -d 'Only change it if the rig\'s version is still N, the one you read (exit 3 otherwise)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l no-env -d 'Clear the rig\'s environment (a preset\'s included)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l no-placement -d 'Remove the rig\'s placement constraints (its agents may run on any node)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l no-secrets -d 'Attach no secrets (drops a preset\'s secret too)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from remove" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from remove" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from remove" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from remove" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from prune" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from prune" -l dry-run -d 'Say what would be deleted, delete nothing'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from prune" -l remote -d 'Prune the rig\'s remote instead: its `polecat/*` branches whose work is on the default branch, each only if still at the commit gt pushed (a branch someone pushed to is kept). Patrol does this by itself after each merge'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from prune" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from prune" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from prune" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a rig: clone SOURCE into rigs/NAME/repo and record its agent settings'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the rigs of this town'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a rig\'s source, remote, default branch and agent settings'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "set" -d 'Change a rig\'s agent settings or remote, from the next dispatch on'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove a rig from the town; refused while any of its agents lives'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Delete the local branches of done beads whose work is safe elsewhere'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand secret; and not __fish_seen_subcommand_from set list rm help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand secret; and not __fish_seen_subcommand_from set list rm help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand secret; and not __fish_seen_subcommand_from set list rm help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand secret; and not __fish_seen_subcommand_from set list rm help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand secret; and not __fish_seen_subcommand_from set list rm help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand secret; and not __fish_seen_subcommand_from set list rm help" -f -a "set" -d 'Set a secret: its value from stdin (or --file), never from the command line'
complete -c gt -n "__fish_gt_using_subcommand secret; and not __fish_seen_subcommand_from set list rm help" -f -a "list" -d 'List the town\'s secrets: names and when each was set, never values'
complete -c gt -n "__fish_gt_using_subcommand secret; and not __fish_seen_subcommand_from set list rm help" -f -a "rm" -d 'Remove a secret; names the rigs that attach it'
complete -c gt -n "__fish_gt_using_subcommand secret; and not __fish_seen_subcommand_from set list rm help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from set" -l file -d 'Read the value from this file instead of stdin (at most 64 KiB)' -r -F
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from set" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from set" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from set" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from set" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from list" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from list" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from rm" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from rm" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from rm" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from rm" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from help" -f -a "set" -d 'Set a secret: its value from stdin (or --file), never from the command line'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the town\'s secrets: names and when each was set, never values'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from help" -f -a "rm" -d 'Remove a secret; names the rigs that attach it'
complete -c gt -n "__fish_gt_using_subcommand secret; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand image; and not __fish_seen_subcommand_from build help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand image; and not __fish_seen_subcommand_from build help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand image; and not __fish_seen_subcommand_from build help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand image; and not __fish_seen_subcommand_from build help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand image; and not __fish_seen_subcommand_from build help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand image; and not __fish_seen_subcommand_from build help" -f -a "build" -d 'Build an agent image: base, claude or codex'
complete -c gt -n "__fish_gt_using_subcommand image; and not __fish_seen_subcommand_from build help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand image; and __fish_seen_subcommand_from build" -l version -d 'The CLI version to pin (default: npm\'s latest, resolved and recorded)' -r
complete -c gt -n "__fish_gt_using_subcommand image; and __fish_seen_subcommand_from build" -l tag -d 'The image name (default: gt-agent:latest for base, gt-claude:latest or gt-codex:latest)' -r
complete -c gt -n "__fish_gt_using_subcommand image; and __fish_seen_subcommand_from build" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand image; and __fish_seen_subcommand_from build" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand image; and __fish_seen_subcommand_from build" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand image; and __fish_seen_subcommand_from build" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand image; and __fish_seen_subcommand_from build" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "build" -d 'Build an agent image: base, claude or codex'
complete -c gt -n "__fish_gt_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand costs" -l rig -d 'Only this rig' -r
complete -c gt -n "__fish_gt_using_subcommand costs" -l since -d 'Only usage recorded since T: a duration ago (10m, 2h, 1d) or a UTC time' -r
complete -c gt -n "__fish_gt_using_subcommand costs" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand costs" -l by-bead -d 'One row per bead instead of per rig'
complete -c gt -n "__fish_gt_using_subcommand costs" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand costs" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand costs" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand costs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand diff" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand diff" -l stat -d 'Only the files changed, with lines added and removed'
complete -c gt -n "__fish_gt_using_subcommand diff" -l no-pager -d 'Print to the terminal instead of through a pager'
complete -c gt -n "__fish_gt_using_subcommand diff" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand diff" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand diff" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -f -a "create" -d 'Create a bead in a rig; prints its new id (e.g. api-3k9)'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -f -a "list" -d 'List beads, oldest first'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -f -a "show" -d 'Show a bead, the agent holding it and every dispatch of it'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -f -a "close" -d 'Close a bead nobody works on (status cancelled). Its history is kept'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -f -a "reopen" -d 'Give a failed, escalated, deferred or cancelled bead another go (status open)'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -f -a "edit" -d 'Change a bead\'s title or body'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close reopen edit help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -l rig -d 'The rig the work belongs to' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -s m -l body -d 'The full description the agent is given' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -s F -l body-file -d 'Read the description from FILE instead (`-` reads standard input), e.g. a Markdown file or `git log -1 --format=%B | gt bead create … -F -`. At most 1 MiB of UTF-8' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -l rig -d 'Only this rig\'s beads' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -l status -d 'Only beads in this status (open, hooked, in_progress, done, failed, escalated, deferred, cancelled)' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from show" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from show" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -l if-version -d 'Only close it if its version is still N (exit 3 otherwise)' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from reopen" -l if-version -d 'Only reopen it if its version is still N (exit 3 otherwise)' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from reopen" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from reopen" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from reopen" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from reopen" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from reopen" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -l title -d 'The new title' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -s m -l body -d 'The new body' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -l if-version -d 'Only write if the bead\'s version is still N, the one you read (exit 3 otherwise)' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a bead in a rig; prints its new id (e.g. api-3k9)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "list" -d 'List beads, oldest first'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a bead, the agent holding it and every dispatch of it'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "close" -d 'Close a bead nobody works on (status cancelled). Its history is kept'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "reopen" -d 'Give a failed, escalated, deferred or cancelled bead another go (status open)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "edit" -d 'Change a bead\'s title or body'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand sling" -l convoy -d 'Sling every open bead of this convoy' -r
complete -c gt -n "__fish_gt_using_subcommand sling" -l branch -d 'Work on this new branch instead of polecat/<name>/<bead> (one bead only)' -r
complete -c gt -n "__fish_gt_using_subcommand sling" -l polecat -d 'Use this polecat (created if new; must be idle) (one bead only)' -r
complete -c gt -n "__fish_gt_using_subcommand sling" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand sling" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand sling" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand sling" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand sling" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand polecat; and not __fish_seen_subcommand_from list nuke revive help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand polecat; and not __fish_seen_subcommand_from list nuke revive help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand polecat; and not __fish_seen_subcommand_from list nuke revive help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand polecat; and not __fish_seen_subcommand_from list nuke revive help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand polecat; and not __fish_seen_subcommand_from list nuke revive help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand polecat; and not __fish_seen_subcommand_from list nuke revive help" -f -a "list" -d 'List polecats at work: state, bead, generation, last heard from, and why'
complete -c gt -n "__fish_gt_using_subcommand polecat; and not __fish_seen_subcommand_from list nuke revive help" -f -a "nuke" -d 'Stop a polecat: its container goes, its bead returns to open, its branch stays'
complete -c gt -n "__fish_gt_using_subcommand polecat; and not __fish_seen_subcommand_from list nuke revive help" -f -a "revive" -d 'Make a nuked polecat work again (idle), dropping the worktree its nuke kept'
complete -c gt -n "__fish_gt_using_subcommand polecat; and not __fish_seen_subcommand_from list nuke revive help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from list" -l rig -d 'Only this rig\'s polecats' -r
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from list" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from list" -l all -d 'Show idle polecats too'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from list" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from nuke" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from nuke" -l force -d 'Delete the worktree even with uncommitted or unpushed work (says what it dropped)'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from nuke" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from nuke" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from nuke" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from nuke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from revive" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from revive" -l force -d 'Drop the kept worktree even with uncommitted or unpushed work'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from revive" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from revive" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from revive" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from revive" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from help" -f -a "list" -d 'List polecats at work: state, bead, generation, last heard from, and why'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from help" -f -a "nuke" -d 'Stop a polecat: its container goes, its bead returns to open, its branch stays'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from help" -f -a "revive" -d 'Make a nuked polecat work again (idle), dropping the worktree its nuke kept'
complete -c gt -n "__fish_gt_using_subcommand polecat; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand peek" -l bead -d 'Show a bead\'s attempt instead (its transcript, or its live container\'s output)' -r
complete -c gt -n "__fish_gt_using_subcommand peek" -l attempt -d 'With --bead: which attempt, counting from 1 (default: the latest)' -r
complete -c gt -n "__fish_gt_using_subcommand peek" -s n -l lines -d 'How many lines' -r
complete -c gt -n "__fish_gt_using_subcommand peek" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand peek" -l raw -d 'Print the output as the container wrote it: control characters pass through (only into a terminal you trust the agent with, or a file); known secret values are still shown as [secret NAME]'
complete -c gt -n "__fish_gt_using_subcommand peek" -s f -l follow -d 'Keep printing what the agent writes until its container exits'
complete -c gt -n "__fish_gt_using_subcommand peek" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand peek" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand peek" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand peek" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand convoy; and not __fish_seen_subcommand_from create add status list close help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand convoy; and not __fish_seen_subcommand_from create add status list close help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand convoy; and not __fish_seen_subcommand_from create add status list close help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand convoy; and not __fish_seen_subcommand_from create add status list close help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand convoy; and not __fish_seen_subcommand_from create add status list close help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand convoy; and not __fish_seen_subcommand_from create add status list close help" -f -a "create" -d 'Create a convoy of beads; prints its id (e.g. hq-c12)'
complete -c gt -n "__fish_gt_using_subcommand convoy; and not __fish_seen_subcommand_from create add status list close help" -f -a "add" -d 'Add beads to a convoy (a landed or partial convoy opens again)'
complete -c gt -n "__fish_gt_using_subcommand convoy; and not __fish_seen_subcommand_from create add status list close help" -f -a "status" -d 'Show one convoy, or every convoy, with its progress'
complete -c gt -n "__fish_gt_using_subcommand convoy; and not __fish_seen_subcommand_from create add status list close help" -f -a "list" -d 'List convoys with their state and counts'
complete -c gt -n "__fish_gt_using_subcommand convoy; and not __fish_seen_subcommand_from create add status list close help" -f -a "close" -d 'Close a convoy: no more state changes. An open one needs --force'
complete -c gt -n "__fish_gt_using_subcommand convoy; and not __fish_seen_subcommand_from create add status list close help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from create" -l policy -d 'all (every bead done), best-effort (some done), or quorum=N% (N% done)' -r
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from create" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from create" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from add" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from add" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from add" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from status" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from status" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from list" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from list" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from close" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from close" -l force -d 'Close even though beads are still active'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from close" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from close" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from close" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from close" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a convoy of beads; prints its id (e.g. hq-c12)'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add beads to a convoy (a landed or partial convoy opens again)'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show one convoy, or every convoy, with its progress'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from help" -f -a "list" -d 'List convoys with their state and counts'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from help" -f -a "close" -d 'Close a convoy: no more state changes. An open one needs --force'
complete -c gt -n "__fish_gt_using_subcommand convoy; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand mail; and not __fish_seen_subcommand_from send inbox read ack help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mail; and not __fish_seen_subcommand_from send inbox read ack help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mail; and not __fish_seen_subcommand_from send inbox read ack help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mail; and not __fish_seen_subcommand_from send inbox read ack help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mail; and not __fish_seen_subcommand_from send inbox read ack help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mail; and not __fish_seen_subcommand_from send inbox read ack help" -f -a "send" -d 'Send a message to `mayor`, `human` or RIG/POLECAT'
complete -c gt -n "__fish_gt_using_subcommand mail; and not __fish_seen_subcommand_from send inbox read ack help" -f -a "inbox" -d 'List an inbox\'s messages (the mayor\'s by default), oldest first'
complete -c gt -n "__fish_gt_using_subcommand mail; and not __fish_seen_subcommand_from send inbox read ack help" -f -a "read" -d 'Show one message in full (sender, time, subject, body) and mark it read'
complete -c gt -n "__fish_gt_using_subcommand mail; and not __fish_seen_subcommand_from send inbox read ack help" -f -a "ack" -d 'Acknowledge messages: mark them handled (and read)'
complete -c gt -n "__fish_gt_using_subcommand mail; and not __fish_seen_subcommand_from send inbox read ack help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from send" -s s -l subject -d 'A one-line subject (at most 256 bytes)' -r
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from send" -s m -l message -d 'The message (at most 64 KiB)' -r
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from send" -l id -d 'The idempotency key: a repeated send with the same id is one message' -r
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from send" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from send" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from send" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from send" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from send" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from inbox" -l as -d 'Whose inbox (host only): mayor (default), human or RIG/POLECAT' -r
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from inbox" -l from -d 'Only messages from this sender: RIG/POLECAT, human, mayor, or patrol' -r
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from inbox" -l kind -d 'Only messages of this kind' -r -f -a "escalation\t''
notice\t''
message\t''"
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from inbox" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from inbox" -l unread -d 'Only unread messages'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from inbox" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from inbox" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from inbox" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from inbox" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from read" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from read" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from read" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from read" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from read" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from ack" -l kind -d 'With --all: only messages of this kind' -r -f -a "escalation\t''
notice\t''
message\t''"
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from ack" -l from -d 'With --all: only messages from this sender' -r
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from ack" -l as -d 'With --all, on the host: whose inbox (mayor, human or RIG/POLECAT)' -r
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from ack" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from ack" -l all -d 'Acknowledge every message of the inbox not acknowledged yet (those --kind and --from keep)'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from ack" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from ack" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from ack" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from ack" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from help" -f -a "send" -d 'Send a message to `mayor`, `human` or RIG/POLECAT'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from help" -f -a "inbox" -d 'List an inbox\'s messages (the mayor\'s by default), oldest first'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from help" -f -a "read" -d 'Show one message in full (sender, time, subject, body) and mark it read'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from help" -f -a "ack" -d 'Acknowledge messages: mark them handled (and read)'
complete -c gt -n "__fish_gt_using_subcommand mail; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -f -a "list" -d 'List the live merge queue, oldest first, with each one\'s state and why it waits'
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -f -a "show" -d 'Show a merge request: its bead, branch, commits, files, where it stands and why, and its history'
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -f -a "approve" -d 'Let a merge request that needs review land (it keeps its place in the queue)'
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -f -a "reject" -d 'Send a merge request back: its bead reopens on its branch and is dispatched again, with WHY in the agent\'s prime'
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -f -a "run" -d 'Land what can land now (as a patrol pass does), waiting for running gates'
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -f -a "diff" -d 'Show what a merge request (or bead) changed: the same command as `gt diff`'
complete -c gt -n "__fish_gt_using_subcommand mq; and not __fish_seen_subcommand_from list show approve reject run diff help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from list" -l rig -d 'Only this rig\'s' -r
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from list" -l state -d 'Only merge requests in this state (repeatable; any of the history)' -r -f -a "queued\t''
needs-review\t''
testing\t''
merged\t''
conflict\t''
failed\t''
rejected\t''
superseded\t''"
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from list" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from list" -l all -d 'Every merge request, merged, sent back and superseded ones included'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from list" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from show" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from show" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from approve" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from approve" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from approve" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from approve" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from approve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from reject" -s m -l message -d 'Why: what the agent should change' -r
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from reject" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from reject" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from reject" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from reject" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from reject" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from run" -l wait -d 'How long to wait for gates still running, e.g. 10m (0s: do not wait)' -r
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from run" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from run" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from run" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from diff" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from diff" -l stat -d 'Only the files changed, with lines added and removed'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from diff" -l no-pager -d 'Print to the terminal instead of through a pager'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from diff" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from diff" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from diff" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the live merge queue, oldest first, with each one\'s state and why it waits'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a merge request: its bead, branch, commits, files, where it stands and why, and its history'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from help" -f -a "approve" -d 'Let a merge request that needs review land (it keeps its place in the queue)'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from help" -f -a "reject" -d 'Send a merge request back: its bead reopens on its branch and is dispatched again, with WHY in the agent\'s prime'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from help" -f -a "run" -d 'Land what can land now (as a patrol pass does), waiting for running gates'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from help" -f -a "diff" -d 'Show what a merge request (or bead) changed: the same command as `gt diff`'
complete -c gt -n "__fish_gt_using_subcommand mq; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand patrol; and not __fish_seen_subcommand_from install uninstall help" -l interval -d 'The longest wait between passes with --watch, e.g. 30s (at least 100ms; default: patrol.interval of gt.toml)' -r
complete -c gt -n "__fish_gt_using_subcommand patrol; and not __fish_seen_subcommand_from install uninstall help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand patrol; and not __fish_seen_subcommand_from install uninstall help" -l watch -d 'Loop until interrupted: a pass at once whenever an agent writes a request (done, checkpoint, mail) or a container of the town ends (exit, OOM kill), and one every --interval in any case. A pass that finds nothing new prints nothing; each line of one that does starts with the local time (with --json: one JSON report per line, its time in `at`)'
complete -c gt -n "__fish_gt_using_subcommand patrol; and not __fish_seen_subcommand_from install uninstall help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand patrol; and not __fish_seen_subcommand_from install uninstall help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand patrol; and not __fish_seen_subcommand_from install uninstall help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand patrol; and not __fish_seen_subcommand_from install uninstall help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand patrol; and not __fish_seen_subcommand_from install uninstall help" -f -a "install" -d 'Run patrol for this town from cron (every minute) or a systemd user timer'
complete -c gt -n "__fish_gt_using_subcommand patrol; and not __fish_seen_subcommand_from install uninstall help" -f -a "uninstall" -d 'Stop running patrol for this town from cron and systemd'
complete -c gt -n "__fish_gt_using_subcommand patrol; and not __fish_seen_subcommand_from install uninstall help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from install" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from install" -l cron -d 'Install a crontab line (the default)'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from install" -l systemd -d 'Install a systemd user service and timer, and enable the timer'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from install" -l print -d 'Print what would be installed; change nothing'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from install" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from install" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from install" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from install" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from uninstall" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from uninstall" -l cron -d 'Only the crontab line'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from uninstall" -l systemd -d 'Only the systemd units'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from uninstall" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from uninstall" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from uninstall" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from uninstall" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from help" -f -a "install" -d 'Run patrol for this town from cron (every minute) or a systemd user timer'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from help" -f -a "uninstall" -d 'Stop running patrol for this town from cron and systemd'
complete -c gt -n "__fish_gt_using_subcommand patrol; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand serve" -l listen -d 'Listen here instead of serve.listen (ADDRESS:PORT; port 0 picks a free one)' -r
complete -c gt -n "__fish_gt_using_subcommand serve" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand serve" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand serve" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand serve" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand drain" -l rig -d 'Drain only this rig (default: the whole town)' -r
complete -c gt -n "__fish_gt_using_subcommand drain" -l timeout -d 'How long agents get to stop on their own before they are stopped, e.g. 10m, 90s or 0s' -r
complete -c gt -n "__fish_gt_using_subcommand drain" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand drain" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand drain" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand drain" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand drain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand stop" -l rig -d 'Stop only this rig (default: the whole town)' -r
complete -c gt -n "__fish_gt_using_subcommand stop" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand stop" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand stop" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand stop" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand stop" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand resume" -l rig -d 'Lift only this rig\'s drain (the circuit breaker stays as it is)' -r
complete -c gt -n "__fish_gt_using_subcommand resume" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand resume" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand resume" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand resume" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand resume" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand status" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand status" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand status" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand status" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand top" -l interval -d 'How often to refresh: the data of the live view, or a new table when stdout is not a terminal (at least 100ms)' -r
complete -c gt -n "__fish_gt_using_subcommand top" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand top" -l once -d 'Print one snapshot and exit (plain tables, or JSON with --json)'
complete -c gt -n "__fish_gt_using_subcommand top" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand top" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand top" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand top" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand log" -l since -d 'Only events since T: a duration ago (10m, 2h, 1d) or a UTC time (2026-11-24 or 2026-11-24T08:00:00Z)' -r
complete -c gt -n "__fish_gt_using_subcommand log" -s n -l limit -d 'At most N events (the newest N)' -r
complete -c gt -n "__fish_gt_using_subcommand log" -l subject -d 'Only events about this subject: a bead id (its whole story), a polecat (RIG/NAME), a rig, a convoy or a mail id' -r
complete -c gt -n "__fish_gt_using_subcommand log" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand log" -s f -l follow -d 'Keep printing new events as they happen (until interrupted); with --json, one JSON object per line'
complete -c gt -n "__fish_gt_using_subcommand log" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand log" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand log" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand log" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand doctor" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand doctor" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand doctor" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand doctor" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand completions" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand completions" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand completions" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand completions" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand prime" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand prime" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand prime" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand prime" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand prime" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand hook" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand hook" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand hook" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand hook" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand hook" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand checkpoint" -s m -l message -d 'What is done and what is next' -r
complete -c gt -n "__fish_gt_using_subcommand checkpoint" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand checkpoint" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand checkpoint" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand checkpoint" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand checkpoint" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand done" -l status -d 'How the work ended' -r -f -a "completed\t''
escalated\t''
deferred\t''"
complete -c gt -n "__fish_gt_using_subcommand done" -s m -l message -d 'A note for the mayor' -r
complete -c gt -n "__fish_gt_using_subcommand done" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand done" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand done" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand done" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand done" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand escalate" -s m -l message -d 'What you need' -r
complete -c gt -n "__fish_gt_using_subcommand escalate" -s s -l subject -d 'A one-line subject' -r
complete -c gt -n "__fish_gt_using_subcommand escalate" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand escalate" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand escalate" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand escalate" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand escalate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand agent; and not __fish_seen_subcommand_from run help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand agent; and not __fish_seen_subcommand_from run help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand agent; and not __fish_seen_subcommand_from run help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand agent; and not __fish_seen_subcommand_from run help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand agent; and not __fish_seen_subcommand_from run help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand agent; and not __fish_seen_subcommand_from run help" -f -a "run" -d 'The agent container\'s entrypoint: run CMD if this container\'s dispatch is current'
complete -c gt -n "__fish_gt_using_subcommand agent; and not __fish_seen_subcommand_from run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand agent; and __fish_seen_subcommand_from run" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand agent; and __fish_seen_subcommand_from run" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand agent; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand agent; and __fish_seen_subcommand_from run" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand agent; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "run" -d 'The agent container\'s entrypoint: run CMD if this container\'s dispatch is current'
complete -c gt -n "__fish_gt_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "init" -d 'Create a town: a directory with gt.toml (town-wide defaults) and .gt/town.db (state)'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "rig" -d 'Manage rigs: the git repositories (projects) this town runs agents on'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "secret" -d 'Manage the town\'s secrets: API keys and tokens its agents need'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "image" -d 'Build agent images locally: no container registry is used, nothing is pulled'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "costs" -d 'Sum the tokens and cost agents reported, per rig (or per bead)'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "diff" -d 'Show what a bead (or merge request) changed against its rig\'s default branch'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "bead" -d 'Manage beads: the work items you give agents (`gt sling`)'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "sling" -d 'Assign beads to polecats: for each, a worktree on its own branch and a container'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "polecat" -d 'Manage polecats: the worker agents of each rig'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "peek" -d 'Show the recent output of a polecat\'s container'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "convoy" -d 'Convoys: batches of beads (across rigs) tracked together with a completion policy'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "mail" -d 'Durable mail between agents, the mayor (your inbox) and you'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "mq" -d 'The merge queue: finished work, reviewed and landed on each rig\'s default branch'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "patrol" -d 'One reconciliation pass: recover dead agents, hand over and land finished work'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "serve" -d 'Serve agents that share no files with this machine (clone workspace), over HTTPS'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "drain" -d 'Stop the crew gently: no new dispatches; agents are asked to stop, then stopped'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "stop" -d 'Stop the crew now: like `gt drain --timeout 0s`, no wait'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "resume" -d 'Dispatch again: close the circuit breaker and lift drains (`gt drain`, `gt stop`)'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "status" -d 'The town at a glance: engine, patrol, unread mail, and each rig\'s beads and agents'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "top" -d 'A live full-screen view of the town: problems first, then every working polecat'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "log" -d 'The event log: every change to the town, who made it, oldest first'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "doctor" -d 'Check the town\'s invariants; exits 1 naming every breach'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish or powershell)'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "prime" -d 'Agent mode: print your assignment, earlier attempts and unread mail (the resume context)'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "hook" -d 'Agent mode: print the bead you work on (your hook), its branch and generation'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "checkpoint" -d 'Agent mode: record progress (the note and your branch head) for a later attempt'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "done" -d 'Agent mode: hand your work over'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "escalate" -d 'Agent mode: ask the mayor (a human) for help'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "agent" -d 'The in-container side of gt (used by agent containers, not by people)'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig secret image costs diff bead sling polecat peek convoy mail mq patrol serve drain stop resume status top log doctor completions prime hook checkpoint done escalate agent help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from rig" -f -a "add" -d 'Add a rig: clone SOURCE into rigs/NAME/repo and record its agent settings'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from rig" -f -a "list" -d 'List the rigs of this town'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from rig" -f -a "show" -d 'Show a rig\'s source, remote, default branch and agent settings'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from rig" -f -a "set" -d 'Change a rig\'s agent settings or remote, from the next dispatch on'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from rig" -f -a "remove" -d 'Remove a rig from the town; refused while any of its agents lives'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from rig" -f -a "prune" -d 'Delete the local branches of done beads whose work is safe elsewhere'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from secret" -f -a "set" -d 'Set a secret: its value from stdin (or --file), never from the command line'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from secret" -f -a "list" -d 'List the town\'s secrets: names and when each was set, never values'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from secret" -f -a "rm" -d 'Remove a secret; names the rigs that attach it'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "build" -d 'Build an agent image: base, claude or codex'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from bead" -f -a "create" -d 'Create a bead in a rig; prints its new id (e.g. api-3k9)'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from bead" -f -a "list" -d 'List beads, oldest first'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from bead" -f -a "show" -d 'Show a bead, the agent holding it and every dispatch of it'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from bead" -f -a "close" -d 'Close a bead nobody works on (status cancelled). Its history is kept'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from bead" -f -a "reopen" -d 'Give a failed, escalated, deferred or cancelled bead another go (status open)'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from bead" -f -a "edit" -d 'Change a bead\'s title or body'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from polecat" -f -a "list" -d 'List polecats at work: state, bead, generation, last heard from, and why'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from polecat" -f -a "nuke" -d 'Stop a polecat: its container goes, its bead returns to open, its branch stays'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from polecat" -f -a "revive" -d 'Make a nuked polecat work again (idle), dropping the worktree its nuke kept'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from convoy" -f -a "create" -d 'Create a convoy of beads; prints its id (e.g. hq-c12)'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from convoy" -f -a "add" -d 'Add beads to a convoy (a landed or partial convoy opens again)'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from convoy" -f -a "status" -d 'Show one convoy, or every convoy, with its progress'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from convoy" -f -a "list" -d 'List convoys with their state and counts'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from convoy" -f -a "close" -d 'Close a convoy: no more state changes. An open one needs --force'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from mail" -f -a "send" -d 'Send a message to `mayor`, `human` or RIG/POLECAT'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from mail" -f -a "inbox" -d 'List an inbox\'s messages (the mayor\'s by default), oldest first'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from mail" -f -a "read" -d 'Show one message in full (sender, time, subject, body) and mark it read'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from mail" -f -a "ack" -d 'Acknowledge messages: mark them handled (and read)'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from mq" -f -a "list" -d 'List the live merge queue, oldest first, with each one\'s state and why it waits'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from mq" -f -a "show" -d 'Show a merge request: its bead, branch, commits, files, where it stands and why, and its history'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from mq" -f -a "approve" -d 'Let a merge request that needs review land (it keeps its place in the queue)'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from mq" -f -a "reject" -d 'Send a merge request back: its bead reopens on its branch and is dispatched again, with WHY in the agent\'s prime'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from mq" -f -a "run" -d 'Land what can land now (as a patrol pass does), waiting for running gates'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from mq" -f -a "diff" -d 'Show what a merge request (or bead) changed: the same command as `gt diff`'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from patrol" -f -a "install" -d 'Run patrol for this town from cron (every minute) or a systemd user timer'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from patrol" -f -a "uninstall" -d 'Stop running patrol for this town from cron and systemd'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "run" -d 'The agent container\'s entrypoint: run CMD if this container\'s dispatch is current'
