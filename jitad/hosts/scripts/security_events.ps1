<#
jitad: read the Security log of this server for the evidence of what some users did in a
time window (logons, logoffs, privileged logons, processes, account and group changes),
and whether the log was cleared.

CONTRACT (the test host in tests/support/winrm_host/scripts.py executes exactly this)
  input   environment variable JITAD_INPUT = base64(UTF-8 JSON)
            {"sids": ["S-1-5-21-...", ...], "start": "<ISO UTC>", "end": "<ISO UTC>", "max": <int>}
          sids: 1 to 10 SIDs of persons' accounts, S-1-5-21-<domain>-<RID of 1000 or more>;
          start, end: yyyy-MM-ddTHH:mm:ss[.fraction]Z with start before end; max: 1 to 5000
          (all checked here again; jitad checks them first)
  reads   at most max + 1 events of the Security log with Id 4624, 4634, 4647, 4672, 4688,
          4720, 4726, 4732, 4733 or 1102 and start <= TimeCreated <= end, oldest first;
          when there are more than max, the first max are kept and "truncated" is true
  keeps   the events whose TargetUserSid, MemberSid, TargetSid or SubjectUserSid is one of
          the sids, and every 1102 (the log was cleared)
  stdout  one line: "JITAD:" + base64(UTF-8 JSON)
            {"events": [{"id": <event id>, "at": "<ISO UTC>", "record": <RecordId>,
                         "sid": "<the matching SID; for an unmatched 1102 its SubjectUserSid or "">",
                         "logon_type": <LogonType as int, or null>, "source": "<IpAddress or "">",
                         "logon_id": "<TargetLogonId, else SubjectLogonId, or "">",
                         "process": "<NewProcessName or "">", "member": "<MemberSid or "">",
                         "target": "<TargetSid or "">"}, ...],
             "truncated": <bool>}
          events sorted by time, then RecordId; "-" (Windows' empty value) is given as ""
  exit    0 on success (also when no event matched);
          3 with {"error": "..."} when the input is missing or invalid;
          2 with {"error": "..."} on any other failure
#>
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Write-Result($Object, [int]$Code) {
    $json = ConvertTo-Json -InputObject $Object -Depth 6 -Compress
    [Console]::Out.WriteLine('JITAD:' + [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($json)))
    exit $Code
}

$invariant = [Globalization.CultureInfo]::InvariantCulture
function Read-Time([string]$Text) {
    if ($Text -cnotmatch '\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?Z\z') { return $null }
    try { return [DateTime]::Parse($Text, $invariant, [Globalization.DateTimeStyles]::RoundtripKind) } catch { return $null }
}

try {
    $in = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([string]$env:JITAD_INPUT)) | ConvertFrom-Json
}
catch {
    Write-Result ([ordered]@{ error = 'input is not base64 JSON' }) 3
}
$sids = @()
if ($null -ne $in -and $in.sids -is [array]) { $sids = @($in.sids) }
if ($sids.Count -lt 1 -or $sids.Count -gt 10) {
    Write-Result ([ordered]@{ error = 'input sids is not a list of 1 to 10 SIDs' }) 3
}
foreach ($s in $sids) {
    if (-not ($s -is [string]) -or $s -cnotmatch '\AS-1-5-21-[0-9]+-[0-9]+-[0-9]+-([0-9]+)\z' -or [int64]$Matches[1] -lt 1000) {
        Write-Result ([ordered]@{ error = "input sids holds what is not a person's account SID" }) 3
    }
}
$start = Read-Time ([string]$in.start)
$end = Read-Time ([string]$in.end)
if ($null -eq $start -or $null -eq $end -or $start -ge $end) {
    Write-Result ([ordered]@{ error = 'input start and end are not ISO UTC times with start before end' }) 3
}
$max = $in.max
if (-not ($max -is [int] -or $max -is [long]) -or $max -lt 1 -or $max -gt 5000) {
    Write-Result ([ordered]@{ error = 'input max is not an integer from 1 to 5000' }) 3
}

function Get-Value($Fields, [string]$Name) {
    $v = [string]$Fields[$Name]
    if ($v -eq '-') { return '' }
    return $v
}

try {
    $filter = @{
        LogName   = 'Security'
        Id        = 4624, 4634, 4647, 4672, 4688, 4720, 4726, 4732, 4733, 1102
        StartTime = $start.ToLocalTime()
        EndTime   = $end.ToLocalTime()
    }
    try {
        $read = @(Get-WinEvent -FilterHashtable $filter -MaxEvents ([int]$max + 1) -Oldest)
    }
    catch {
        if ($_.FullyQualifiedErrorId -notlike 'NoMatchingEventsFound*') { throw }
        $read = @()
    }
    $truncated = $read.Count -gt $max
    if ($truncated) { $read = @($read[0..([int]$max - 1)]) }

    $wanted = @{}
    foreach ($s in $sids) { $wanted[$s.ToUpperInvariant()] = $true }
    $kept = @()
    foreach ($e in $read) {
        $x = [xml]$e.ToXml()
        $f = @{}
        foreach ($d in $x.SelectNodes("//*[local-name()='EventData']/*[local-name()='Data']")) {
            $f[$d.GetAttribute('Name')] = $d.InnerText
        }
        foreach ($d in $x.SelectNodes("//*[local-name()='UserData']/*/*")) {
            $f[$d.LocalName] = $d.InnerText
        }
        $sid = ''
        foreach ($name in 'TargetUserSid', 'MemberSid', 'TargetSid', 'SubjectUserSid') {
            $v = Get-Value $f $name
            if ($v -and $wanted.ContainsKey($v.ToUpperInvariant())) { $sid = $v; break }
        }
        if (-not $sid) {
            if ($e.Id -ne 1102) { continue }
            $sid = Get-Value $f 'SubjectUserSid'
        }
        $logonType = $null
        $lt = Get-Value $f 'LogonType'
        if ($lt -match '\A[0-9]+\z') { $logonType = [int]$lt }
        $logonId = Get-Value $f 'TargetLogonId'
        if (-not $logonId) { $logonId = Get-Value $f 'SubjectLogonId' }
        $kept += [pscustomobject][ordered]@{
            id         = [int]$e.Id
            at         = $e.TimeCreated.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", $invariant)
            record     = [int64]$e.RecordId
            sid        = $sid
            logon_type = $logonType
            source     = Get-Value $f 'IpAddress'
            logon_id   = $logonId
            process    = Get-Value $f 'NewProcessName'
            member     = Get-Value $f 'MemberSid'
            target     = Get-Value $f 'TargetSid'
        }
    }
    $sorted = @($kept | Sort-Object -Property at, record)
    Write-Result ([ordered]@{ events = $sorted; truncated = [bool]$truncated }) 0
}
catch {
    Write-Result ([ordered]@{ error = $_.Exception.Message }) 2
}
