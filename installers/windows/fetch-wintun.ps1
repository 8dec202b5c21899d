# Fetches the signed Wintun driver DLL that wgdesk.iss bundles: wintun\bin\amd64\wintun.dll next to
# this script. The archive is pinned by version and SHA-256 (the value wintun.net publishes), the DLL
# in it by its own SHA-256; either mismatch stops the build. The values are wintun_pin.py's (a test
# holds these copies to them); where they come from is said there.
$ErrorActionPreference = 'Stop'
$Version = '0.14.1'
$Sha256 = '07c256185d6ee3652e09fa55c0b673e2624b565e02c4b9091c79ca7d2f24ef51'
$DllSha256 = 'e5da8447dc2c320edc0fc52fa01885c103de8c118481f683643cacc3220dafce'
$Url = "https://www.wintun.net/builds/wintun-$Version.zip"

$Zip = Join-Path $env:TEMP "wintun-$Version.zip"
Invoke-WebRequest -Uri $Url -OutFile $Zip
$Actual = (Get-FileHash -Algorithm SHA256 $Zip).Hash.ToLowerInvariant()
if ($Actual -ne $Sha256) { throw "wintun-$Version.zip: SHA-256 $Actual, expected $Sha256" }
Expand-Archive -Path $Zip -DestinationPath $env:TEMP -Force
$Extracted = Join-Path $env:TEMP 'wintun\bin\amd64\wintun.dll'
$DllActual = (Get-FileHash -Algorithm SHA256 $Extracted).Hash.ToLowerInvariant()
if ($DllActual -ne $DllSha256) {
  throw "wintun.dll in the official wintun-$Version.zip: SHA-256 $DllActual, pinned $DllSha256 (fix the pin in wintun_pin.py and here from this archive)"
}
$Dest = Join-Path $PSScriptRoot 'wintun\bin\amd64'
New-Item -ItemType Directory -Force -Path $Dest | Out-Null
Copy-Item $Extracted $Dest -Force
$Signature = Get-AuthenticodeSignature (Join-Path $Dest 'wintun.dll')
if ($Signature.Status -ne 'Valid') { throw "wintun.dll: Authenticode signature is $($Signature.Status)" }
Write-Host "wintun.dll $Version -> $Dest"
