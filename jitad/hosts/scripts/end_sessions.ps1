<#
jitad: end every logon session of one user on this server, so no token keeps a right
that was just removed (group membership already in a logon token survives its removal),
purge the Kerberos tickets of the user's logon sessions, and confirm none remains.

CONTRACT (the test host in tests/support/winrm_host/scripts.py executes exactly this)
  input   environment variable JITAD_INPUT = base64(UTF-8 JSON) {"sid": "S-1-5-21-..."}
          the SID must be a person's account, S-1-5-21-<domain>-<RID of 1000 or more>, with
          nothing after it (checked here again; jitad checks it first)
  stdout  one line: "JITAD:" + base64(UTF-8 JSON)
            {"sid": "<the SID>", "sessions": [<session ids logged off>], "processes": <count stopped>,
             "failed": [<session ids logoff.exe could not end>],
             "tickets_purged": <count of the user's logon sessions whose Kerberos tickets were purged>,
             "remaining": [{"logon_id": "0x<hex LUID>" or "", "processes": <count still running>}]}
          "remaining" lists each logon session of the user in which a process of the user still
          runs after the wait below ("" when the process belongs to no logon session listed
          for the user); empty when the user has no live logon session left
  exit    0 on success (also when the user had no session, and when sessions remain:
          "remaining" says so and jitad treats it as a failure to retry);
          3 with {"error": "..."} when the input is missing or not a SID;
          2 with {"error": "..."} on any other failure

Steps:
  1. Interactive and RDP sessions are logged off (logoff.exe <id>); the user's remaining
     processes (network logons, scheduled tasks, session 0) are stopped.
  2. Every logon session listed for the account (CIM: Win32_LoggedOnUser associates the
     Win32_Account with each Win32_LogonSession) has its Kerberos tickets purged:
     klist.exe -lh 0x<high> -li 0x<low> purge. A logon session that has already ended cannot
     be purged (klist fails) and is not counted; that is not an error.
  3. Confirm. Win32_LoggedOnUser keeps listing logon sessions that have ended (stale
     entries), so being listed is not enough to count as remaining: a logon session
     remains only if a process still runs in it (Win32_SessionProcess), and any process of
     the user still running counts. Logoff is asynchronous, so this is re-checked once a
     second for up to 10 seconds before answering.

Limits: a logon session without any process (an SMB or other network logon holding no
process) is purged of its tickets but never reported as remaining; the account is matched by
the name its SID translates to, so an account that no longer resolves (deleted) finds nothing:
end its sessions before deleting it.
#>
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Write-Result($Object, [int]$Code) {
    $json = ConvertTo-Json -InputObject $Object -Depth 6 -Compress
    [Console]::Out.WriteLine('JITAD:' + [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($json)))
    exit $Code
}

function Get-OwnedProcesses([string]$Account) {
    # One process listing with owners (elevated), matched on the account name: one call, not
    # one WMI round trip per process.
    @(Get-Process -IncludeUserName | Where-Object { $_.UserName -eq $Account })
}

function Get-LogonSessions([string]$Domain, [string]$Name) {
    # Win32_LoggedOnUser: Antecedent = Win32_Account (Domain, Name), Dependent = Win32_LogonSession (LogonId).
    $ids = @(Get-CimInstance -ClassName Win32_LoggedOnUser | Where-Object {
            $_.Antecedent.Name -eq $Name -and $_.Antecedent.Domain -eq $Domain
        } | ForEach-Object { [string]$_.Dependent.LogonId } | Sort-Object -Unique)
    @($ids | ForEach-Object {
            Get-CimInstance -ClassName Win32_LogonSession -Filter ("LogonId = '{0}'" -f [uint64]$_) -ErrorAction SilentlyContinue
        })
}

function Get-Remaining($Sessions, [string]$Account) {
    $left = @(Get-OwnedProcesses $Account)
    $seen = @{}
    $out = @()
    foreach ($s in $Sessions) {
        $pids = @(Get-CimAssociatedInstance -InputObject $s -Association Win32_SessionProcess -ResultClassName Win32_Process -ErrorAction SilentlyContinue |
                ForEach-Object { [int]$_.ProcessId })
        $mine = @($left | Where-Object { $pids -contains $_.Id })
        foreach ($p in $mine) { $seen[$p.Id] = $true }
        if ($mine.Count -gt 0) {
            $out += [ordered]@{ logon_id = ('0x{0:x}' -f [uint64]$s.LogonId); processes = $mine.Count }
        }
    }
    $unplaced = @($left | Where-Object { -not $seen.ContainsKey($_.Id) })
    if ($unplaced.Count -gt 0) { $out += [ordered]@{ logon_id = ''; processes = $unplaced.Count } }
    $out   # each an ordered dictionary, which the pipeline does not unroll
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
    $account = (New-Object System.Security.Principal.SecurityIdentifier($sid)).Translate(
        [System.Security.Principal.NTAccount]).Value
    $domain, $name = $account.Split('\', 2)

    # 1. Log off and stop.
    $owned = @(Get-OwnedProcesses $account)
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

    # 2. Purge the Kerberos tickets of each logon session listed for the account.
    $logons = @(Get-LogonSessions $domain $name)
    $purged = 0
    foreach ($s in $logons) {
        $luid = [uint64]$s.LogonId
        $high = $luid -shr 32
        $low = $luid - ($high -shl 32)
        $ErrorActionPreference = 'Continue'   # klist.exe fails on a logon session that has ended
        & klist.exe -lh ('0x{0:x}' -f $high) -li ('0x{0:x}' -f $low) purge 2>&1 | Out-Null
        if ($LASTEXITCODE -eq 0) { $purged++ }
        $ErrorActionPreference = 'Stop'
    }

    # 3. Confirm: a logon session remains only while a process of the user runs in it.
    $remaining = @()
    for ($try = 0; $try -lt 10; $try++) {
        $remaining = @(Get-Remaining $logons $account)
        if ($remaining.Count -eq 0) { break }
        Start-Sleep -Seconds 1
        # A process still running after logoff is stopped again; a session that survives stays listed.
        foreach ($p in @(Get-OwnedProcesses $account)) {
            try { Stop-Process -Id $p.Id -Force -ErrorAction Stop; $stopped++ } catch { }
        }
    }
    Write-Result ([ordered]@{
            sid = $sid; sessions = $ended; processes = $stopped; failed = $failed
            tickets_purged = $purged; remaining = $remaining
        }) 0
}
catch [System.Security.Principal.IdentityNotMappedException] {
    # No such account any more: nothing can be found by its name.
    Write-Result ([ordered]@{ sid = $sid; sessions = @(); processes = 0; failed = @(); tickets_purged = 0; remaining = @() }) 0
}
catch {
    Write-Result ([ordered]@{ error = $_.Exception.Message }) 2
}
