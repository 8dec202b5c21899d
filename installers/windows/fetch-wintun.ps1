# Fetches the signed Wintun driver DLL that wgdesk.iss bundles: wintun\bin\amd64\wintun.dll next to
# this script. The archive is pinned by version and SHA-256; a mismatch stops the build.
$ErrorActionPreference = 'Stop'
$Version = '0.14.1'
$Sha256 = '07c256185d6ee3652e09fa55c0b673e2624b565e02c4b9091c79ca7d2f24ef51'
$Url = "https://www.wintun.net/builds/wintun-$Version.zip"

$Zip = Join-Path $env:TEMP "wintun-$Version.zip"
Invoke-WebRequest -Uri $Url -OutFile $Zip
$Actual = (Get-FileHash -Algorithm SHA256 $Zip).Hash.ToLowerInvariant()
if ($Actual -ne $Sha256) { throw "wintun-$Version.zip: SHA-256 $Actual, expected $Sha256" }
Expand-Archive -Path $Zip -DestinationPath $env:TEMP -Force
$Dest = Join-Path $PSScriptRoot 'wintun\bin\amd64'
New-Item -ItemType Directory -Force -Path $Dest | Out-Null
Copy-Item (Join-Path $env:TEMP 'wintun\bin\amd64\wintun.dll') $Dest -Force
$Signature = Get-AuthenticodeSignature (Join-Path $Dest 'wintun.dll')
if ($Signature.Status -ne 'Valid') { throw "wintun.dll: Authenticode signature is $($Signature.Status)" }
Write-Host "wintun.dll $Version -> $Dest"
