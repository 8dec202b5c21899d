<#
.SYNOPSIS
  Checks wgdesk's Windows backend on a real Windows 10/11 machine: a tunnel brought up through the
  wgdesk-helper service to a local WireGuard peer, then ping, DNS, routes, the kill switch with the
  engine killed, wg.exe show, and cleanup. Prints PASS/FAIL per step; the exit code is the number of
  failures.

.DESCRIPTION
  Run in an elevated PowerShell (Administrator) after installing wgdesk (wgdesk-setup.exe) and either
  the official WireGuard for Windows client (wireguard.exe, wg.exe) or wireguard-go.exe with wg.exe.
  The peer runs on this machine as tunnel "wgdpeer" (10.99.0.2/32, UDP 51899 on loopback); wgdesk's
  tunnel is "wgdtest" (10.99.0.1/32, DNS 10.99.0.2, AllowedIPs 10.99.0.0/24, full tunnel and kill
  switch on). Nothing outside 10.99.0.0/24 and 127.0.0.1:51899 is contacted except the two probes of
  the kill-switch step (1.1.1.1:443 and a DNS query to 1.1.1.1), which must FAIL to connect.

  Both ends are on one machine, so Windows may answer a ping to 10.99.0.2 locally; the ping step
  therefore also requires wgdesk's transfer counters to grow (the echo crossed the tunnel).

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File scripts\verify-windows.ps1
  powershell -ExecutionPolicy Bypass -File scripts\verify-windows.ps1 -WgdeskDir 'D:\wgdesk' -Keep
#>
param(
  [string]$WgdeskDir = "$env:ProgramFiles\wgdesk",
  [string]$WireGuardDir = "$env:ProgramFiles\WireGuard",
  [string]$WireGuardGo = '',
  [switch]$Keep
)

$ErrorActionPreference = 'Stop'
$script:Failures = 0
$Tunnel = 'wgdtest'
$Peer = 'wgdpeer'
$PeerPort = 51899
$Work = Join-Path $env:TEMP 'wgdesk-verify'

function Step([string]$Name, [scriptblock]$Check) {
  try {
    $detail = & $Check
    Write-Host ("PASS  {0}{1}" -f $Name, $(if ($detail) { " ($detail)" } else { '' })) -ForegroundColor Green
  } catch {
    $script:Failures++
    Write-Host ("FAIL  {0}: {1}" -f $Name, $_.Exception.Message) -ForegroundColor Red
  }
}

function Require([bool]$Condition, [string]$Message) { if (-not $Condition) { throw $Message } }

function Transfer([string]$Name) {
  # "PUBKEY<TAB>RX<TAB>TX" per peer: the sum of both directions.
  $line = & $script:Wg show $Name transfer 2>$null
  Require ($LASTEXITCODE -eq 0 -and $line) "wg.exe show $Name transfer failed"
  $f = ($line | Select-Object -First 1) -split "`t"
  return [int64]$f[1] + [int64]$f[2]
}

# --- prerequisites ---------------------------------------------------------------------------------
Step 'running as Administrator' {
  $p = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
  Require $p.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator) 'start PowerShell as Administrator'
}
Step 'wgdesk installed, helper service running' {
  $script:Ctl = Join-Path $WgdeskDir 'wgdeskctl.exe'
  Require (Test-Path $script:Ctl) "$script:Ctl missing"
  $svc = Get-Service -Name 'wgdesk-helper' -ErrorAction SilentlyContinue
  Require ($null -ne $svc) 'service wgdesk-helper not installed'
  Require ($svc.Status -eq 'Running') "service wgdesk-helper is $($svc.Status)"
  $deps = (Get-Service wgdesk-helper).ServicesDependedOn.Name
  Require (($deps -contains 'Nsi') -and ($deps -contains 'Tcpip')) "depends on: $deps"
  Require (Test-Path (Join-Path $WgdeskDir 'wintun.dll')) 'wintun.dll missing beside wgdesk'
}
Step 'helper folder ProgramData\wgdesk: owner SYSTEM or Administrators, protected, nothing for others' {
  $trusted = @('S-1-5-18', 'S-1-5-32-544')
  $dir = Join-Path ([Environment]::GetFolderPath('CommonApplicationData')) 'wgdesk'
  Require (Test-Path $dir) "$dir missing (the running helper creates it)"
  $acl = Get-Acl $dir
  $owner = $acl.GetOwner([Security.Principal.SecurityIdentifier]).Value
  Require ($trusted -contains $owner) "owner is $owner"
  Require $acl.AreAccessRulesProtected 'its DACL inherits from ProgramData'
  $others = @($acl.GetAccessRules($true, $true, [Security.Principal.SecurityIdentifier]) |
    Where-Object { $_.AccessControlType -eq 'Allow' -and $trusted -notcontains $_.IdentityReference.Value })
  Require ($others.Count -eq 0) "allows $(($others | ForEach-Object { $_.IdentityReference.Value }) -join ', ')"
  $dir
}
Step 'a WireGuard peer program and wg.exe' {
  $script:Wg = Join-Path $WireGuardDir 'wg.exe'
  Require (Test-Path $script:Wg) "$script:Wg missing (install WireGuard for Windows)"
  $script:Official = Join-Path $WireGuardDir 'wireguard.exe'
  if ($WireGuardGo) { Require (Test-Path $WireGuardGo) "$WireGuardGo missing"; 'wireguard-go' }
  else { Require (Test-Path $script:Official) "$script:Official missing (or pass -WireGuardGo)"; 'official client' }
}

# --- keys and configurations -----------------------------------------------------------------------
New-Item -ItemType Directory -Force -Path $Work | Out-Null
$ours = (& $script:Wg genkey).Trim();  $oursPub = ($ours | & $script:Wg pubkey).Trim()
$theirs = (& $script:Wg genkey).Trim(); $theirsPub = ($theirs | & $script:Wg pubkey).Trim()
$peerConf = Join-Path $Work "$Peer.conf"
$ourConf = Join-Path $Work "$Tunnel.conf"
@"
[Interface]
PrivateKey = $theirs
ListenPort = $PeerPort
Address = 10.99.0.2/32

[Peer]
PublicKey = $oursPub
AllowedIPs = 10.99.0.1/32
"@ | Set-Content -Encoding ascii $peerConf
@"
[Interface]
PrivateKey = $ours
Address = 10.99.0.1/32
DNS = 10.99.0.2

[Peer]
PublicKey = $theirsPub
Endpoint = 127.0.0.1:$PeerPort
AllowedIPs = 10.99.0.0/24
PersistentKeepalive = 5
"@ | Set-Content -Encoding ascii $ourConf

# --- the peer --------------------------------------------------------------------------------------
Step 'local peer up' {
  if ($WireGuardGo) {
    $script:PeerProcess = Start-Process -FilePath $WireGuardGo -ArgumentList @('-f', $Peer) -PassThru -WindowStyle Hidden
    Start-Sleep -Seconds 2
    $stripped = Join-Path $Work "$Peer.wg"
    (Get-Content $peerConf | Where-Object { $_ -notmatch '^Address' }) | Set-Content -Encoding ascii $stripped
    & $script:Wg setconf $Peer $stripped
    Require ($LASTEXITCODE -eq 0) 'wg.exe setconf on the wireguard-go peer failed'
    New-NetIPAddress -InterfaceAlias $Peer -IPAddress 10.99.0.2 -PrefixLength 32 | Out-Null
  } else {
    & $script:Official /installtunnelservice $peerConf
    Require ($LASTEXITCODE -eq 0) 'wireguard.exe /installtunnelservice failed'
    Start-Sleep -Seconds 3
  }
  & $script:Wg show $Peer listen-port
}

# --- wgdesk's tunnel, through the service ------------------------------------------------------------
Step 'tunnel up through the helper service' {
  & $script:Ctl up $ourConf --full-tunnel --kill-switch
  Require ($LASTEXITCODE -eq 0) "wgdeskctl up exited $LASTEXITCODE"
  Require ($null -ne (Get-NetAdapter -Name $Tunnel -ErrorAction SilentlyContinue)) "no adapter $Tunnel"
}
Step 'wg.exe show talks to the engine over its named pipe' {
  $out = & $script:Wg show $Tunnel
  Require ($LASTEXITCODE -eq 0) 'wg.exe show failed (UAPI pipe \\.\pipe\ProtectedPrefix\Administrators\WireGuard\wgdtest)'
  Require ($out -match [regex]::Escape($theirsPub)) 'the peer is not listed'
  'peer listed'
}
Step 'handshake within 15 s' {
  $deadline = (Get-Date).AddSeconds(15)
  do {
    $hs = ((& $script:Wg show $Tunnel latest-handshakes) -split "`t")[1]
    if ([int64]$hs -gt 0) { return "at $hs" }
    Start-Sleep -Milliseconds 500
  } while ((Get-Date) -lt $deadline)
  throw 'no handshake'
}
Step 'ping through the tunnel' {
  $before = Transfer $Tunnel
  $ok = Test-Connection -ComputerName 10.99.0.2 -Count 3 -Quiet
  $after = Transfer $Tunnel
  Require $ok 'no echo reply from 10.99.0.2'
  Require (($after - $before) -ge 3 * 60) "tunnel counters grew by $($after - $before) bytes only: the echo did not cross it"
  "+$($after - $before) bytes"
}
Step 'routes on the tunnel adapter' {
  $routes = Get-NetRoute -InterfaceAlias $Tunnel -ErrorAction Stop | ForEach-Object DestinationPrefix
  Require ($routes -contains '10.99.0.0/24') "routes: $routes"
  Require (($routes -contains '0.0.0.0/0') -or ($routes -contains '0.0.0.0/1')) "no default route: $routes"
  $best = Find-NetRoute -RemoteIPAddress 9.9.9.9 | Select-Object -First 1
  Require ($best.InterfaceAlias -eq $Tunnel) "9.9.9.9 goes via $($best.InterfaceAlias)"
}
Step 'DNS servers on the tunnel adapter' {
  $dns = (Get-DnsClientServerAddress -InterfaceAlias $Tunnel -AddressFamily IPv4).ServerAddresses
  Require ($dns -contains '10.99.0.2') "DNS: $dns"
}
Step 'kill switch: WFP filters present' {
  $xml = Join-Path $Work 'filters.xml'
  netsh wfp show filters file=$xml | Out-Null
  $n = (Select-String -Path $xml -Pattern 'wgdesk:' -SimpleMatch).Count
  Require ($n -gt 0) 'no filter named wgdesk:'
  "$n filters"
}
Step 'kill switch holds with the engine killed' {
  $engine = Get-Process -Name 'wgdesk-engine' -ErrorAction Stop
  $engine | Stop-Process -Force
  Start-Sleep -Seconds 1
  $web = Test-NetConnection -ComputerName 1.1.1.1 -Port 443 -WarningAction SilentlyContinue
  Require (-not $web.TcpTestSucceeded) '1.1.1.1:443 reachable with the engine dead'
  $dnsLeak = $true
  try { Resolve-DnsName example.com -Server 1.1.1.1 -DnsOnly -QuickTimeout -ErrorAction Stop | Out-Null }
  catch { $dnsLeak = $false }
  Require (-not $dnsLeak) 'a DNS query to 1.1.1.1 was answered'
}
Step 'kill switch holds with the helper service killed (persistent filters)' {
  $svc = Get-CimInstance Win32_Service -Filter "Name='wgdesk-helper'"
  Stop-Process -Id $svc.ProcessId -Force
  Start-Sleep -Milliseconds 500
  $web = Test-NetConnection -ComputerName 1.1.1.1 -Port 443 -WarningAction SilentlyContinue
  Require (-not $web.TcpTestSucceeded) '1.1.1.1:443 reachable with the helper dead'
  # the service manager restarts it (sc.exe failure: after 2 s); the new helper keeps the tunnel blocked
  $deadline = (Get-Date).AddSeconds(30)
  while ((Get-Service wgdesk-helper).Status -ne 'Running' -and (Get-Date) -lt $deadline) { Start-Sleep 1 }
  Require ((Get-Service wgdesk-helper).Status -eq 'Running') 'the service was not restarted after the crash'
  Start-Sleep -Seconds 2
  $xml = Join-Path $Work 'filters-restart.xml'
  netsh wfp show filters file=$xml | Out-Null
  Require (Select-String -Path $xml -Pattern 'wgdesk: block everything else' -SimpleMatch -Quiet) 'the kill switch is gone after the restart'
}

# --- cleanup -----------------------------------------------------------------------------------------
if (-not $Keep) {
  Step 'tunnel down, adapter and filters gone' {
    & $script:Ctl down $Tunnel
    Require ($LASTEXITCODE -eq 0) "wgdeskctl down exited $LASTEXITCODE"
    Start-Sleep -Seconds 1
    Require ($null -eq (Get-NetAdapter -Name $Tunnel -ErrorAction SilentlyContinue)) "adapter $Tunnel still there"
    $xml = Join-Path $Work 'filters-after.xml'
    netsh wfp show filters file=$xml | Out-Null
    Require (-not (Select-String -Path $xml -Pattern 'wgdesk:' -SimpleMatch -Quiet)) 'wgdesk filters left behind'
    $web = Test-NetConnection -ComputerName 1.1.1.1 -Port 443 -WarningAction SilentlyContinue
    Require $web.TcpTestSucceeded 'no connectivity after the tunnel went down'
  }
  Step 'peer removed' {
    if ($WireGuardGo) { if ($script:PeerProcess) { Stop-Process -Id $script:PeerProcess.Id -Force } }
    else { & $script:Official /uninstalltunnelservice $Peer }
    Remove-Item -Recurse -Force $Work
  }
}

Write-Host ("{0} failure(s)" -f $script:Failures)
exit $script:Failures
