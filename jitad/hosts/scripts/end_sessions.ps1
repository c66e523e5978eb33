<#
jitad: end every logon session of one user on this server, so no token keeps a right
that was just removed (group membership already in a logon token survives its removal).

CONTRACT (the test host in tests/support/winrm_host.py executes exactly this)
  input   environment variable JITAD_INPUT = base64(UTF-8 JSON) {"sid": "S-1-5-21-..."}
          the SID must be a person's account, S-1-5-21-<domain>-<RID of 1000 or more>, with
          nothing after it (checked here again; jitad checks it first)
  stdout  one line: "JITAD:" + base64(UTF-8 JSON)
            {"sid": "<the SID>", "sessions": [<session ids logged off>], "processes": <count stopped>,
             "failed": [<session ids logoff.exe could not end>]}
  exit    0 on success (also when the user had no session);
          3 with {"error": "..."} when the input is missing or not a SID;
          2 with {"error": "..."} on any other failure

Interactive and RDP sessions are logged off (logoff.exe <id>); the user's remaining
processes (network logons, scheduled tasks, session 0) are stopped.
#>
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Write-Result($Object, [int]$Code) {
    $json = ConvertTo-Json -InputObject $Object -Depth 6 -Compress
    [Console]::Out.WriteLine('JITAD:' + [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($json)))
    exit $Code
}

try {
    $in = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([string]$env:JITAD_INPUT)) | ConvertFrom-Json
    $sid = [string]$in.sid
}
catch {
    Write-Result ([ordered]@{ error = 'input is not base64 JSON' }) 3
}
if ($sid -cnotmatch '\AS-1-5-21-[0-9]+-[0-9]+-[0-9]+-([0-9]+)\z' -or [int64]$Matches[1] -lt 1000) {
    Write-Result ([ordered]@{ error = "input sid is not a person's account SID" }) 3
}

try {
    # One process listing with owners (elevated), matched on the account name the SID
    # translates to: one call, not one WMI round trip per process.
    $account = (New-Object System.Security.Principal.SecurityIdentifier($sid)).Translate(
        [System.Security.Principal.NTAccount]).Value
    $owned = @(Get-Process -IncludeUserName | Where-Object { $_.UserName -eq $account })
    $sessions = @($owned | ForEach-Object { [int]$_.SessionId } | Where-Object { $_ -gt 0 } | Sort-Object -Unique)
    $ended = @(); $failed = @()
    foreach ($id in $sessions) {
        $ErrorActionPreference = 'Continue'   # logoff.exe may write to stderr; its exit code decides
        & logoff.exe $id 2>&1 | Out-Null
        if ($LASTEXITCODE -eq 0) { $ended += $id } else { $failed += $id }
        $ErrorActionPreference = 'Stop'
    }
    $stopped = 0
    foreach ($p in $owned) {
        try { Stop-Process -Id $p.Id -Force -ErrorAction Stop; $stopped++ } catch { }
    }
    Write-Result ([ordered]@{ sid = $sid; sessions = $ended; processes = $stopped; failed = $failed }) 0
}
catch [System.Security.Principal.IdentityNotMappedException] {
    # No such account any more: it can have no process either.
    Write-Result ([ordered]@{ sid = $sid; sessions = @(); processes = 0; failed = @() }) 0
}
catch {
    Write-Result ([ordered]@{ error = $_.Exception.Message }) 2
}
