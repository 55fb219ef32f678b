// Runs once, when MongoDB first starts on an empty volume: the official image runs
// /docker-entrypoint-initdb.d/*.js with mongosh, logged in as the root user (mongodb-root).
// Creates world-service's user with readWrite on the app's database and nothing else; the app
// never uses the root user. Its credentials are the mongodb-app Secret, mounted as files.
// (An existing volume is never initialised again: scripts/upgrade-mongodb-credentials.sh.)
const fs = require('fs');

function credential(key) {
  const value = fs.readFileSync(`/etc/mongodb-app/${key}`, 'utf8');
  if (!/^[A-Za-z0-9_-]+$/.test(value)) {
    throw new Error(`the mongodb-app Secret's ${key} is empty or not URL-safe (letters, digits, - and _)`);
  }
  return value;
}

const database = process.env.APP_DATABASE;
if (!database) {
  throw new Error('APP_DATABASE is not set: it names the database world-service uses');
}
const user = credential('username');
db.getSiblingDB(database).createUser({
  user: user,
  pwd: credential('password'),
  roles: [{ role: 'readWrite', db: database }],
});
print(`created MongoDB user ${user} with readWrite on ${database} only`);
