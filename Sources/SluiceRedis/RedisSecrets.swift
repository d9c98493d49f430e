import SluiceSecrets

extension RedisClient {
    /// The secrets of this client that a secrets manager may rewrite while it runs:
    /// `REDIS_PASSWORD_FILE` (unless the URL carries the password) with `REDIS_USERNAME_FILE`
    /// if the user comes from one, and the TLS files
    /// (`SLUICE_REDIS_TLS_CA_FILE`, `_CERT_FILE`, `_KEY_FILE`), reloaded as one.
    public func reloadableSecrets(from source: SecretSource) -> [ReloadableSecret] {
        var secrets: [ReloadableSecret] = []
        if let file = source.file(of: "REDIS_PASSWORD"), (try? source.optional("REDIS_PASSWORD"))??.revealed == configuration.password?.revealed {
            // A user read from a file changes with the password (Vault's dynamic credentials):
            // both files make one secret, tried together until the pair is accepted.
            let userFile = source.file(of: "REDIS_USERNAME").flatMap { path in
                (try? source.optional("REDIS_USERNAME"))??.revealed == configuration.username ? path : nil
            }
            let fixedUser = configuration.username
            secrets.append(
                ReloadableSecret(name: "REDIS_PASSWORD", files: [file] + (userFile.map { [$0] } ?? [])) { [self] () throws(SecretReloadError) in
                    let credentials: RedisCredentials
                    do throws(SecretError) {
                        let username = userFile == nil ? fixedUser : try source.required("REDIS_USERNAME").revealed
                        credentials = RedisCredentials(username: username, password: try source.required("REDIS_PASSWORD"))
                    } catch {
                        throw SecretReloadError(error)
                    }
                    do throws(RedisError) {
                        try await rotate(to: credentials)
                    } catch {
                        throw SecretReloadError(.refused, "Redis refused the new credentials: \(error)")
                    }
                })
        }
        if let tls = configuration.tls {
            let files = [tls.caFile, tls.certificateFile, tls.keyFile].compactMap { $0 }
            if !files.isEmpty {
                secrets.append(
                    ReloadableSecret(name: "SLUICE_REDIS_TLS", files: files) { [self] () throws(SecretReloadError) in
                        do throws(RedisError) {
                            try await reloadTLS()
                        } catch .invalidConfiguration(let reason) {
                            throw SecretReloadError(.invalid, reason)
                        } catch {
                            throw SecretReloadError(.refused, "a TLS connection with the new files failed: \(error)")
                        }
                    })
            }
        }
        return secrets
    }
}
