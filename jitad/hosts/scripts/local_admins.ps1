<#
jitad: list the members of the local Administrators group, by SID.

CONTRACT (the test host in tests/support/winrm_host.py executes exactly this)
  input   none (JITAD_INPUT is not read)
  stdout  one line: "JITAD:" + base64(UTF-8 JSON)
            {"group": {"sid": "S-1-5-32-544", "name": "<localised group name>"},
             "members": [{"sid": "S-1-...", "path": "WinNT://...", "class": "User|Group|..."}]}
  exit    0 on success; 2 with {"error": "<message>"} when the group cannot be read

The group is found by its well-known SID (S-1-5-32-544), never by name: the name is
localised ("Administrateurs", "Administratoren"). Members come from ADSI's WinNT provider,
which still lists a member whose SID no longer resolves (an orphaned SID, e.g. a deleted
domain account) with the path WinNT://S-1-5-21-... and an empty class.
Get-LocalGroupMember fails on such a group, so it is not used.
#>
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Write-Result($Object, [int]$Code) {
    $json = ConvertTo-Json -InputObject $Object -Depth 6 -Compress
    [Console]::Out.WriteLine('JITAD:' + [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($json)))
    exit $Code
}

try {
    $wellKnown = New-Object System.Security.Principal.SecurityIdentifier('S-1-5-32-544')
    $name = $wellKnown.Translate([System.Security.Principal.NTAccount]).Value.Split('\')[-1]
    $group = [ADSI]('WinNT://./' + $name + ',group')
    $members = @()
    foreach ($m in @($group.Invoke('Members'))) {
        $type = $m.GetType()
        $path = [string]$type.InvokeMember('ADsPath', 'GetProperty', $null, $m, $null)
        $class = ''
        try { $class = [string]$type.InvokeMember('Class', 'GetProperty', $null, $m, $null) } catch { }
        $sid = ''
        try {
            $bytes = [byte[]]$type.InvokeMember('objectSid', 'GetProperty', $null, $m, $null)
            $sid = (New-Object System.Security.Principal.SecurityIdentifier($bytes, 0)).Value
        }
        catch {
            # A member ADSI cannot bind (orphaned, foreign): its path ends with the SID.
            $last = $path.Split('/')[-1]
            if ($last -match '\AS-1-[0-9-]+\z') { $sid = $last }
        }
        if (-not $sid) { throw "cannot read the SID of member $path" }
        $members += [ordered]@{ sid = $sid; path = $path; class = $class }
    }
    Write-Result ([ordered]@{ group = [ordered]@{ sid = 'S-1-5-32-544'; name = $name }; members = $members }) 0
}
catch {
    Write-Result ([ordered]@{ error = $_.Exception.Message }) 2
}
