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
complete -c gt -n "__fish_gt_needs_command" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_needs_command" -s V -l version -d 'Print version'
complete -c gt -n "__fish_gt_needs_command" -f -a "init" -d 'Create a town: a directory with gt.toml (town-wide defaults) and .gt/town.db (state)'
complete -c gt -n "__fish_gt_needs_command" -f -a "rig" -d 'Manage rigs: the git repositories (projects) this town runs agents on'
complete -c gt -n "__fish_gt_needs_command" -f -a "bead" -d 'Manage beads: the work items agents are slung'
complete -c gt -n "__fish_gt_needs_command" -f -a "status" -d 'The town at a glance: rigs, beads by status, queued beads, agents by state'
complete -c gt -n "__fish_gt_needs_command" -f -a "log" -d 'The event log: every change to the town, who made it, oldest first'
complete -c gt -n "__fish_gt_needs_command" -f -a "completions" -d 'Print a shell completion script: `gt completions bash > /etc/bash_completion.d/gt`'
complete -c gt -n "__fish_gt_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand init" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand init" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand init" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand init" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show remove help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show remove help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show remove help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show remove help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show remove help" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show remove help" -f -a "add" -d 'Add a rig: clone SOURCE into rigs/NAME/repo and record its agent settings'
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show remove help" -f -a "list"
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show remove help" -f -a "show"
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show remove help" -f -a "remove"
complete -c gt -n "__fish_gt_using_subcommand rig; and not __fish_seen_subcommand_from add list show remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l image -d 'The agent container image (built locally; never pulled)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l command -d 'The agent command, run inside the container by `gt agent run --`' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l memory -d 'Container memory limit, e.g. 512m or 2g' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l cpus -d 'Container CPU limit, e.g. 2 or 0.5' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l remote -d 'Where finished branches are pushed (a URL or a path to a bare repository)' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l max-polecats -d 'How many agents of this rig may run at once; more beads wait queued' -r
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from list" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from list" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from show" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from show" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from remove" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from remove" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from remove" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from remove" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a rig: clone SOURCE into rigs/NAME/repo and record its agent settings'
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "list"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "show"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "remove"
complete -c gt -n "__fish_gt_using_subcommand rig; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close edit help" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close edit help" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close edit help" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close edit help" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close edit help" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close edit help" -f -a "create" -d 'Create a bead in a rig; prints its new id (e.g. api-3k9)'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close edit help" -f -a "list" -d 'List beads, oldest first'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close edit help" -f -a "show" -d 'Show a bead, the agent holding it and every dispatch of it'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close edit help" -f -a "close" -d 'Close a bead nobody works on (status cancelled). Its history is kept'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close edit help" -f -a "edit" -d 'Change a bead\'s title or body'
complete -c gt -n "__fish_gt_using_subcommand bead; and not __fish_seen_subcommand_from create list show close edit help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -l rig -d 'The rig the work belongs to' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -s m -l body -d 'The full description the agent is given' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -l rig -d 'Only this rig\'s beads' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -l status -d 'Only beads in this status (open, hooked, in_progress, done, failed, escalated, deferred, cancelled)' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from show" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from show" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -l if-version -d 'Only close it if its version is still N (exit 3 otherwise)' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from close" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -l title -d 'The new title' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -s m -l body -d 'The new body' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -l if-version -d 'Only write if the bead\'s version is still N, the one you read (exit 3 otherwise)' -r
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from edit" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a bead in a rig; prints its new id (e.g. api-3k9)'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "list" -d 'List beads, oldest first'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a bead, the agent holding it and every dispatch of it'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "close" -d 'Close a bead nobody works on (status cancelled). Its history is kept'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "edit" -d 'Change a bead\'s title or body'
complete -c gt -n "__fish_gt_using_subcommand bead; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand status" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand status" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand status" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand status" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand status" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand log" -l since -d 'Only events since T: a duration ago (10m, 2h, 1d) or a UTC time (2026-11-24 or 2026-11-24T08:00:00Z)' -r
complete -c gt -n "__fish_gt_using_subcommand log" -s n -l limit -d 'At most N events (the newest N)' -r
complete -c gt -n "__fish_gt_using_subcommand log" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand log" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand log" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand log" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand log" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand completions" -l town -d 'The town directory (default: the nearest parent of the working directory with .gt/)' -r -F
complete -c gt -n "__fish_gt_using_subcommand completions" -l json -d 'Print machine-readable JSON instead of tables'
complete -c gt -n "__fish_gt_using_subcommand completions" -s q -l quiet -d 'Print less'
complete -c gt -n "__fish_gt_using_subcommand completions" -s v -l verbose -d 'Print diagnostics on stderr (-vv for more)'
complete -c gt -n "__fish_gt_using_subcommand completions" -s h -l help -d 'Print help'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig bead status log completions help" -f -a "init" -d 'Create a town: a directory with gt.toml (town-wide defaults) and .gt/town.db (state)'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig bead status log completions help" -f -a "rig" -d 'Manage rigs: the git repositories (projects) this town runs agents on'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig bead status log completions help" -f -a "bead" -d 'Manage beads: the work items agents are slung'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig bead status log completions help" -f -a "status" -d 'The town at a glance: rigs, beads by status, queued beads, agents by state'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig bead status log completions help" -f -a "log" -d 'The event log: every change to the town, who made it, oldest first'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig bead status log completions help" -f -a "completions" -d 'Print a shell completion script: `gt completions bash > /etc/bash_completion.d/gt`'
complete -c gt -n "__fish_gt_using_subcommand help; and not __fish_seen_subcommand_from init rig bead status log completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from rig" -f -a "add" -d 'Add a rig: clone SOURCE into rigs/NAME/repo and record its agent settings'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from rig" -f -a "list"
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from rig" -f -a "show"
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from rig" -f -a "remove"
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from bead" -f -a "create" -d 'Create a bead in a rig; prints its new id (e.g. api-3k9)'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from bead" -f -a "list" -d 'List beads, oldest first'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from bead" -f -a "show" -d 'Show a bead, the agent holding it and every dispatch of it'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from bead" -f -a "close" -d 'Close a bead nobody works on (status cancelled). Its history is kept'
complete -c gt -n "__fish_gt_using_subcommand help; and __fish_seen_subcommand_from bead" -f -a "edit" -d 'Change a bead\'s title or body'
